//! Why settings were refused.

/// A setting that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsInputError {
    #[error("unknown time zone: use an IANA name such as Asia/Jakarta or UTC")]
    UnknownTimezone,
    #[error("the locale must be a language tag such as en, id or pt-BR")]
    BadLocale,
    #[error("reminderMinutes must be between 0 and {max}")]
    ReminderOutOfRange { max: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A command sent to another user's settings: a routing bug, not a user mistake.
    #[error("these settings belong to another user")]
    OwnerMismatch,
}
