//! The write-behind cache of keyed rows (reps, calls): a transaction loads
//! each row once, changes it in memory, and writes every new row with one
//! set-based INSERT and every changed row with one UPDATE at flush.

use std::collections::HashMap;

/// One row the transaction holds.
pub(crate) struct Held<T> {
    /// Its state in this transaction.
    pub value: T,
    /// Not yet in the table.
    pub new: bool,
    /// Changed since the last flush.
    pub dirty: bool,
    /// When it was created in this transaction (the insert order).
    pub order: usize,
}

/// A workspace's rows by key; `None` means known to be missing.
pub(crate) type Known<T> = HashMap<String, Option<Held<T>>>;

/// Rows loaded from the table.
pub(crate) fn loaded<T>(value: T) -> Option<Held<T>> {
    Some(Held { value, new: false, dirty: false, order: 0 })
}

/// Records a new row, created `order`-th in the transaction.
pub(crate) fn insert<T>(known: &mut Known<T>, key: String, value: T, order: usize) {
    known.insert(key, Some(Held { value, new: true, dirty: true, order }));
}

/// Records a row's new state.
pub(crate) fn update<T>(known: &mut Known<T>, key: String, value: T) {
    let slot = known.entry(key).or_insert(None);
    match slot {
        Some(held) => {
            held.value = value;
            held.dirty = true;
        }
        None => *slot = Some(Held { value, new: false, dirty: true, order: 0 }),
    }
}

/// The row's current state, when held.
pub(crate) fn get<'a, T>(known: Option<&'a Known<T>>, key: &str) -> Option<&'a T> {
    known.and_then(|m| m.get(key)).and_then(Option::as_ref).map(|h| &h.value)
}

/// Whether any row waits to be written.
pub(crate) fn any_dirty<T>(known: &Known<T>) -> bool {
    known.values().flatten().any(|h| h.dirty)
}

/// The rows to write: new ones in creation order, then changed ones.
pub(crate) fn writes<T>(known: &Known<T>) -> (Vec<&T>, Vec<&T>) {
    let mut inserts: Vec<&Held<T>> = Vec::new();
    let mut updates = Vec::new();
    for held in known.values().flatten().filter(|h| h.dirty) {
        if held.new {
            inserts.push(held);
        } else {
            updates.push(&held.value);
        }
    }
    inserts.sort_by_key(|h| h.order);
    (inserts.into_iter().map(|h| &h.value).collect(), updates)
}

/// Marks every row written.
pub(crate) fn mark_clean<T>(known: &mut Known<T>) {
    for held in known.values_mut().flatten() {
        held.new = false;
        held.dirty = false;
    }
}
