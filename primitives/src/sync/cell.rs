//! An `UnsafeCell` with loom's closure API (`with`, `with_mut`), so that loom can check every
//! access to data guarded by our own locks for races, while std and shuttle builds compile
//! the same calls down to a plain `core::cell::UnsafeCell`.

#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// Plain `UnsafeCell` with loom's access API.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `data`.
    pub const fn new(data: T) -> Self {
        Self(core::cell::UnsafeCell::new(data))
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the data; the caller upholds aliasing rules.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the data; the caller upholds aliasing rules.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
