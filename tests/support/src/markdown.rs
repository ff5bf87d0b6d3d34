//! The Markdown the benchmarks print: table rows, a table's header, bulleted sections, verdicts.

/// A Markdown table row.
pub fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// A Markdown table header and its separator line.
pub fn header(titles: &[&str]) -> String {
    let separator: Vec<String> = titles.iter().map(|_| "---".to_owned()).collect();
    let titles: Vec<String> = titles.iter().map(|t| (*t).to_owned()).collect();
    format!("{}\n{}", row(&titles), row(&separator))
}

/// `items` as a bulleted list.
pub fn bullets(items: &[String]) -> Vec<String> {
    items.iter().map(|item| format!("- {item}")).collect()
}

/// A blank line, `title` and `items` bulleted; nothing when there are no items.
pub fn section(title: &str, items: &[String]) -> Vec<String> {
    if items.is_empty() {
        return Vec::new();
    }
    [String::new(), title.to_owned()].into_iter().chain(bullets(items)).collect()
}

/// "PASS" or "FAIL".
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_the_titles_and_a_separator_per_column() {
        assert_eq!(header(&["a", "b"]), "| a | b |\n| --- | --- |");
        assert_eq!(row(&["1".into(), "2".into()]), "| 1 | 2 |");
    }

    #[test]
    fn a_section_without_items_is_left_out() {
        assert!(section("Notes:", &[]).is_empty());
        assert_eq!(section("Notes:", &["one".into()]), ["", "Notes:", "- one"]);
        assert_eq!((verdict(true), verdict(false)), ("PASS", "FAIL"));
    }
}
