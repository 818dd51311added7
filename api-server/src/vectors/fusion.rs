//! Reciprocal rank fusion: combines rankings whose scores are not comparable (a vector
//! similarity and a full-text rank) by rank alone: `score(d) = Σ 1 / (K + rank_i(d))`.

use std::collections::HashMap;

use uuid::Uuid;

/// The usual constant; it damps the weight of the very first ranks.
pub const K: f32 = 60.0;

/// Which rankings found a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    /// The vector ranking.
    pub vector: bool,
    /// The full-text ranking.
    pub text: bool,
}

/// A fused result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// The document.
    pub id: Uuid,
    /// Its fused score.
    pub score: f32,
    /// Where it came from.
    pub sources: Sources,
}

/// Fuses two rankings (each best first) and keeps the best `limit`. Ties keep the vector
/// ranking's order first, then the text ranking's.
pub fn fuse(vector: &[Uuid], text: &[Uuid], limit: usize) -> Vec<Fused> {
    let mut by_id: HashMap<Uuid, (Fused, usize)> = HashMap::new();
    let mut order = 0;
    for (ranking, is_vector) in [(vector, true), (text, false)] {
        for (rank, id) in ranking.iter().enumerate() {
            let (entry, _) = by_id.entry(*id).or_insert_with(|| {
                order += 1;
                (Fused { id: *id, score: 0.0, sources: Sources::default() }, order)
            });
            entry.score += 1.0 / (K + rank as f32 + 1.0);
            if is_vector {
                entry.sources.vector = true;
            } else {
                entry.sources.text = true;
            }
        }
    }
    let mut fused: Vec<(Fused, usize)> = by_id.into_values().collect();
    fused.sort_by(|(a, ao), (b, bo)| b.score.total_cmp(&a.score).then(ao.cmp(bo)));
    fused.into_iter().take(limit).map(|(f, _)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    #[test]
    fn a_document_in_both_rankings_beats_one_in_either() {
        let [a, b, c, d] = [1, 2, 3, 4].map(Uuid::from_u128);
        let fused = fuse(&[a, b, c], &[d, c], 10);
        assert_eq!(fused[0].id, c, "c is third and second: found by both, it wins");
        assert_eq!(fused[0].sources, Sources { vector: true, text: true });
        assert_eq!(fused.iter().map(|f| f.id).collect::<Vec<_>>(), [c, a, d, b]);
        assert_eq!(fused[2].sources, Sources { vector: false, text: true });
        let expected = 1.0 / (K + 3.0) + 1.0 / (K + 2.0);
        assert!((fused[0].score - expected).abs() < 1e-6);
    }

    #[test]
    fn limit_and_empty_rankings() {
        assert!(fuse(&[], &[], 5).is_empty());
        let only_text = fuse(&[], &ids(3), 2);
        assert_eq!(only_text.iter().map(|f| f.id).collect::<Vec<_>>(), ids(2));
        assert!(only_text.iter().all(|f| f.sources.text && !f.sources.vector));
    }
}
