//! CSV cells (RFC 4180) with formula neutralisation: the one rule the
//! console's report downloads, the streamed export (which write cells) and
//! the import (which reads them back) share.

/// Whether a spreadsheet would read text starting like this as a formula.
fn formula_like(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Appends a CSV cell holding `text`: text that a spreadsheet would read as
/// a formula gets a leading `'`; a cell holding `,`, `"`, CR or LF is
/// quoted (`"` doubled).
pub fn write_text(out: &mut Vec<u8>, text: &str) {
    let quote = text.contains([',', '"', '\r', '\n']);
    if quote {
        out.push(b'"');
    }
    if formula_like(text) {
        out.push(b'\'');
    }
    if quote {
        for (i, part) in text.split('"').enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(part.as_bytes());
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// A CSV cell holding `text` (see [`write_text`]).
pub fn csv_text(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    write_text(&mut out, text);
    String::from_utf8(out).unwrap_or_default()
}

/// Undoes [`write_text`]'s neutralisation of a cell's value read back by a
/// CSV parser (`'=x` → `=x`). A value that itself began with `'` followed
/// by a formula character cannot be told apart.
pub fn unneutralise(value: &str) -> &str {
    match value.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_text("+1"), "'+1");
        assert_eq!(csv_text("-x"), "'-x");
        assert_eq!(csv_text("@cmd"), "'@cmd");
        assert_eq!(csv_text("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
        assert_eq!(csv_text(""), "");
        assert_eq!(unneutralise("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(unneutralise("'plain"), "'plain");
    }
}
