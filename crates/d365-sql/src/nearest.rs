//! "Did you mean ...?": the nearest name by edit distance, for unknown tables and columns.

/// The candidate nearest to `name` (case-insensitive Levenshtein distance), if it is close
/// enough to be a plausible typo: at most a third of the name's length, and at least 1..3
/// edits depending on length. A candidate that contains the name (or is contained in it) also
/// counts when nothing is closer.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted = name.to_ascii_lowercase();
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    let mut containing: Option<&str> = None;
    for c in candidates {
        let lower = c.to_ascii_lowercase();
        if lower == wanted {
            continue;
        }
        let d = distance(&wanted, &lower);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
        if wanted.len() >= 3
            && (lower.contains(&wanted) || wanted.contains(&lower))
            && containing.is_none_or(|prev| c.len() < prev.len())
        {
            containing = Some(c);
        }
    }
    best.map(|(_, c)| c).or(containing).map(str::to_string)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_prefixes() {
        let tables = ["account", "contact", "lead", "opportunity", "new_widget"];
        assert_eq!(nearest("acount", tables).as_deref(), Some("account"));
        assert_eq!(nearest("Contakt", tables).as_deref(), Some("contact"));
        assert_eq!(nearest("widget", tables).as_deref(), Some("new_widget"));
        assert_eq!(nearest("zzzzzz", tables), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
