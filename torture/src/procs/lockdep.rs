//! Worker-side helpers for the lock-order validator in `Mode::Panic`: its panic is a worker's
//! *result* (handed to the runner in a file, then a dedicated exit code), not noise on stderr.

/// Prefix of the validator's panic messages.
pub const PANIC_PREFIX: &str = "lockdep:";

/// Installs a panic hook that prints nothing for the validator's panics and one line (with
/// `who`) for any other.
pub fn quiet_panics(who: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let msg = message(info.payload());
        if !msg.starts_with(PANIC_PREFIX) {
            crate::out::warn!(
                "{who} panicked at {}: {msg}",
                info.location().map_or_else(String::new, |l| l.to_string())
            );
        }
    }));
}

/// A panic payload's text.
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
