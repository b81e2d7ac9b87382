//! Herald's smtp adapter: lands in a later issue (see ARCHITECTURE.md).
