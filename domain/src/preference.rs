//! Preference resolution: whether a user receives a template.

/// Whether a user receives a template. A stored row decides (`disabled`); with no row the
/// template's `enabled_by_default` does. A `disabled = false` row opts a user in to an
/// off-by-default event.
pub fn is_enabled(enabled_by_default: bool, stored_disabled: Option<bool>) -> bool {
    match stored_disabled {
        Some(disabled) => !disabled,
        None => enabled_by_default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_row_decides_and_no_row_falls_back_to_the_default() {
        assert!(is_enabled(true, None));
        assert!(!is_enabled(false, None));
        assert!(!is_enabled(true, Some(true)));
        assert!(is_enabled(true, Some(false)));
        assert!(
            is_enabled(false, Some(false)),
            "opting in to an off-by-default event"
        );
        assert!(!is_enabled(false, Some(true)));
    }
}
