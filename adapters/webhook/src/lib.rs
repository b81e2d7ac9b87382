//! Herald's webhook adapter: lands in a later issue (see ARCHITECTURE.md).
