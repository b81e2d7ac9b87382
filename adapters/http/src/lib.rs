//! Herald's http adapter: lands in a later issue (see ARCHITECTURE.md).
