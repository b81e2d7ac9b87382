//! Herald's inbox adapter: lands in a later issue (see ARCHITECTURE.md).
