//! Listings filtered to what the caller may see, with paging kept right:
//! pages of the underlying listing are read until `n` visible items are
//! found or the listing ends, and the next page starts after the last
//! visible item.

use berth_registry::{Page, Result};
use std::future::Future;

/// Underlying pages read at once: at least this many, so a caller who sees
/// little of a large registry does not cost one query per item.
const MIN_BATCH: usize = 100;

/// Up to `n` items that `visible` admits, after `last`, read from `fetch`
/// (a listing: `(last, limit)` → page).
pub async fn visible_page<T, F, Fut>(
    mut fetch: F,
    last: Option<&str>,
    n: usize,
    visible: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> String,
) -> Result<Page<T>>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut kept = Vec::new();
    let mut cursor = last.map(String::from);
    if n == 0 {
        return Ok(Page {
            items: kept,
            next: None,
        });
    }
    loop {
        let page = fetch(cursor.take(), n.max(MIN_BATCH)).await?;
        let mut rest = page.items.into_iter();
        while let Some(item) = rest.next() {
            if !visible(&item) {
                continue;
            }
            kept.push(item);
            if kept.len() == n {
                let more = rest.len() > 0 || page.next.is_some();
                let next = kept.last().filter(|_| more).map(&key);
                return Ok(Page { items: kept, next });
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => {
                return Ok(Page {
                    items: kept,
                    next: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing of `items` in order, `limit` at a time, counting reads.
    async fn list(items: &[u32], last: Option<String>, limit: usize) -> Result<Page<u32>> {
        let after: Option<u32> = last.map(|l| l.parse().unwrap());
        let rest: Vec<u32> = items
            .iter()
            .copied()
            .filter(|i| after.is_none_or(|a| *i > a))
            .collect();
        let next = (rest.len() > limit).then(|| rest[limit - 1].to_string());
        Ok(Page {
            items: rest.into_iter().take(limit).collect(),
            next,
        })
    }

    async fn visible(items: &[u32], last: Option<&str>, n: usize) -> Page<u32> {
        let even = |i: &u32| i.is_multiple_of(2);
        visible_page(
            |last, limit| list(items, last, limit),
            last,
            n,
            even,
            u32::to_string,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn pages_fill_up_across_underlying_pages() {
        let items: Vec<u32> = (1..=500).collect();
        let page = visible(&items, None, 120).await;
        assert_eq!(page.items.len(), 120);
        assert!(page.items.iter().all(|i| i.is_multiple_of(2)));
        assert_eq!(page.next.as_deref(), Some("240"));
        let page = visible(&items, page.next.as_deref(), 200).await;
        assert_eq!(page.items.first(), Some(&242));
        assert_eq!(page.items.len(), 130);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn the_end_has_no_next_page() {
        let page = visible(&[1, 2, 3, 4], None, 2).await;
        assert_eq!(page.items, [2, 4]);
        assert_eq!(page.next, None);
        let page = visible(&[1, 2, 3, 4, 5], None, 2).await;
        assert_eq!(
            page.next.as_deref(),
            Some("4"),
            "more items follow, even hidden"
        );
        assert_eq!(visible(&[1, 3], None, 5).await.items, Vec::<u32>::new());
    }
}
