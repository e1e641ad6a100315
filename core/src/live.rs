//! [`Live`]: a value many readers share and one writer replaces whole.
//!
//! The presets a function serves are one: requests and images read them constantly, and a
//! reload (on AWS, when the presets object changed) swaps in a fully built new value. A reader
//! holds the `Arc` it loaded for as long as it needs it, so it never sees a half-loaded value,
//! and a swap never waits for readers (nor they for it): `arc-swap` loads without a lock.

use arc_swap::ArcSwap;
use std::fmt;
use std::sync::Arc;

/// A shared, atomically replaceable value; clones are handles to the same value.
pub struct Live<T>(Arc<ArcSwap<T>>);

impl<T> Live<T> {
    /// A handle holding `value`. Nothing replaces it unless someone calls [`Live::replace`]
    /// (the local stack never does: its presets are fixed for the life of the process).
    pub fn new(value: T) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// The value now. Later replacements do not change what the returned `Arc` points to.
    pub fn current(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Makes `value` the one every later [`Live::current`] returns.
    pub fn replace(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> From<T> for Live<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> From<Arc<T>> for Live<T> {
    fn from(value: Arc<T>) -> Self {
        Self(Arc::new(ArcSwap::new(value)))
    }
}

impl<T: fmt::Debug> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Live").field(&self.current()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_reaches_every_handle_but_not_values_already_loaded() {
        let live = Live::new(1);
        let other = live.clone();
        let before = live.current();
        other.replace(2);
        assert_eq!((*before, *live.current(), *other.current()), (1, 2, 2));
    }
}
