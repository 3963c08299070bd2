//! Cursor paging shared by every list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;
use crate::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Which page to read: after an opaque cursor, at most `limit` items.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// The sort key of the last item already seen.
    pub after: Option<String>,
    /// Most items to return (1..=1000).
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { after: None, limit: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// Validates the query parameters `cursor` and `limit`.
    pub fn parse(cursor: Option<&str>, limit: Option<i64>) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE as i64).contains(&n) => n as usize,
            Some(_) => return Err(Error::validation("limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}"))),
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => {
                Some(decode(c).ok_or_else(|| Error::validation("cursor", "cursor is not one this server issued"))?)
            }
        };
        Ok(PageRequest { after, limit })
    }

    /// The cursor's key read as an integer id.
    pub fn after_i64(&self) -> Result<Option<i64>, Error> {
        self.after
            .as_deref()
            .map(|s| s.parse().map_err(|_| Error::validation("cursor", "cursor is not one this server issued")))
            .transpose()
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra item
    /// only says that there is a next page.
    pub fn from_overfetch(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| encode(&key(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode(cursor: &str) -> Option<String> {
    URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_yields_a_cursor_that_round_trips() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        let req = PageRequest::parse(page.next_cursor.as_deref(), Some(2)).unwrap();
        assert_eq!(req.after_i64().unwrap(), Some(2));
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(1001)).is_err());
        assert!(PageRequest::parse(Some("!!"), None).is_err());
    }
}
