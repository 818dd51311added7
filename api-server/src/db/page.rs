//! Cursor pagination. A cursor is opaque to clients: base64url of either the last row's id
//! (keyset: newest first by UUIDv7 id, stable under inserts) or, for ranked search results
//! that have no stable key, an offset.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// From the newest row.
    Start,
    /// After the row with this id (exclusive), newest first.
    After(Uuid),
    /// After skipping this many rows of a ranked result.
    Offset(u32),
}

/// One page request: where to start and how many rows.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Start position.
    pub position: Position,
    /// Rows wanted (1–100).
    pub limit: u32,
}

impl Page {
    /// Validates the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid("limit", format!("must be from 1 to {MAX_LIMIT}")));
        }
        let position = match cursor {
            None | Some("") => Position::Start,
            Some(c) => decode(c).ok_or_else(|| invalid("cursor", "is not a cursor returned by this list".into()))?,
        };
        Ok(Self { position, limit })
    }

    /// The id to page after, for keyset queries (`None` for the first page). A search cursor
    /// handed to a plain list is rejected.
    pub fn after(&self) -> Result<Option<Uuid>, ApiError> {
        match self.position {
            Position::Start => Ok(None),
            Position::After(id) => Ok(Some(id)),
            Position::Offset(_) => Err(invalid("cursor", "belongs to a search; repeat the same q".into())),
        }
    }

    /// The offset, for ranked queries.
    pub fn offset(&self) -> Result<u32, ApiError> {
        match self.position {
            Position::Start => Ok(0),
            Position::Offset(n) => Ok(n),
            Position::After(_) => Err(invalid("cursor", "belongs to a plain list, not a search".into())),
        }
    }

    /// Rows to fetch: one more than wanted, to learn whether a next page exists.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// A page of results and the cursor of the next one.
#[derive(Debug)]
pub struct Paged<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Present when more rows follow.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Cuts a keyset result fetched with [`Page::fetch`] to the page, using `id` for the cursor.
    pub fn keyset(mut rows: Vec<T>, page: &Page, id: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor = if more { rows.last().map(|r| encode(Position::After(id(r)))) } else { None };
        Self { items: rows, next_cursor }
    }

    /// Cuts a ranked result fetched with [`Page::fetch`] at `offset`.
    pub fn ranked(mut rows: Vec<T>, page: &Page, offset: u32) -> Self {
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor = if more { Some(encode(Position::Offset(offset + page.limit))) } else { None };
        Self { items: rows, next_cursor }
    }

    /// Converts the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

fn encode(position: Position) -> String {
    let raw = match position {
        Position::Start => String::new(),
        Position::After(id) => format!("k:{id}"),
        Position::Offset(n) => format!("o:{n}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(cursor: &str) -> Option<Position> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    match raw.split_once(':')? {
        ("k", id) => Uuid::parse_str(id).ok().map(Position::After),
        ("o", n) => n.parse().ok().filter(|n| *n <= 100_000).map(Position::Offset),
        _ => None,
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Validation {
        detail: format!("query parameter {field:?} is not valid"),
        errors: vec![FieldError { field: field.into(), message }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        for p in [Position::After(id), Position::Offset(40)] {
            assert_eq!(Page::parse(Some(5), Some(&encode(p))).unwrap().position, p);
        }
        for bad in ["nope", "a2", &URL_SAFE_NO_PAD.encode("k:not-a-uuid"), &URL_SAFE_NO_PAD.encode("o:99999999")] {
            assert!(Page::parse(None, Some(bad)).is_err(), "{bad}");
        }
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(101), None).is_err());
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn keyset_pages_report_a_next_cursor_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::parse(Some(2), None).unwrap();
        let paged = Paged::keyset(ids.clone(), &page, |u| *u);
        assert_eq!(paged.items.len(), 2);
        assert_eq!(Page::parse(Some(2), paged.next_cursor.as_deref()).unwrap().position, Position::After(ids[1]));
        assert!(Paged::keyset(ids[..2].to_vec(), &page, |u| *u).next_cursor.is_none());
    }
}
