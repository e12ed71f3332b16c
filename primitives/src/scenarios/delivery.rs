//! Shared by the lock and log scenarios: joining a scenario thread so that its own panic message
//! reaches the engine, and checking what a log delivered against what each thread logged.

use crate::sync::thread::JoinHandle;

/// Joins `h`; if the thread panicked, panics again with its payload, so that the engine reports
/// the broken invariant rather than "thread panicked".
pub(crate) fn join<T>(h: JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// The text of message `i` of thread `t` in a log scenario (never contains "dropped").
pub(crate) fn text(t: usize, i: usize) -> String {
    format!("t{t}-{i}")
}

/// The indices `i` of the delivered messages [`text`]`(t, i)` of thread `t`, in delivery order.
pub(crate) fn indices_of(texts: &[String], t: usize) -> Vec<usize> {
    let prefix = format!("t{t}-");
    texts
        .iter()
        .filter_map(|s| s.strip_prefix(&prefix).and_then(|n| n.parse().ok()))
        .collect()
}

/// Asserts the delivery contract over `texts` (everything delivered), where thread `t` logged
/// messages `0..logged[t]`: each thread's delivered messages are distinct, in its order and
/// not invented, and the ones not delivered are exactly the drops announced (a message
/// containing `"dropped"` and the count, see [`announced_drops`]) — nothing lost silently.
pub(crate) fn assert_delivered(scenario: &str, texts: &[String], logged: &[usize]) {
    let mut delivered = 0;
    let mut missing = Vec::new();
    for (t, &n) in logged.iter().enumerate() {
        let got = indices_of(texts, t);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]) && got.last().map_or(true, |&i| i < n),
            "{scenario}: thread {t}'s messages duplicated, reordered or invented: logged 0..{n}, \
             delivered in the order {got:?}"
        );
        delivered += got.len();
        if got.len() < n {
            let lost: Vec<usize> = (0..n).filter(|i| !got.contains(i)).take(8).collect();
            missing.push(format!("thread {t}: {lost:?}"));
        }
    }
    let announced: u64 = texts.iter().map(|s| announced_drops(s)).sum();
    let total: usize = logged.iter().sum();
    assert_eq!(
        (delivered as u64) + announced,
        total as u64,
        "{scenario}: {total} messages logged, {delivered} delivered, {announced} announced as \
         dropped: messages lost without a word (first missing: {})",
        missing.join("; ")
    );
}

/// The weaker, mid-run form of [`assert_delivered`] for one thread: its delivered messages are
/// distinct and in order, and those of its first `logged` not (yet) delivered are covered by
/// the drops announced so far (by any thread: announcements do not name one).
pub(crate) fn assert_delivered_so_far(scenario: &str, texts: &[String], t: usize, logged: usize) {
    let got = indices_of(texts, t);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]) && got.last().map_or(true, |&i| i < logged),
        "{scenario}: thread {t}'s messages duplicated, reordered or invented: logged \
         0..{logged}, delivered in the order {got:?}"
    );
    let announced: u64 = texts.iter().map(|s| announced_drops(s)).sum();
    let undelivered = (logged - got.len()) as u64;
    assert!(
        undelivered <= announced,
        "{scenario}: thread {t} logged 0..{logged} under nested locks and released the outermost \
         one, yet {undelivered} of them are not delivered ({announced} announced as dropped; \
         delivered {got:?})"
    );
}

/// The drop count a delivered text announces: the first number in a text containing
/// `"dropped"` (0 for any other text).
pub(crate) fn announced_drops(text: &str) -> u64 {
    if !text.contains("dropped") {
        return 0;
    }
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}
