//! Herald's postgres adapter: lands in a later issue (see ARCHITECTURE.md).
