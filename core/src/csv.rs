//! RFC 4180 text as spreadsheets export it: the one reader behind the directory import
//! and the device register import.

/// A record that cannot be read, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSyntax {
    pub line: usize,
    pub reason: String,
}

/// The most frequent of `,` `;` and tab in the header line wins, as spreadsheet exports
/// use any of them.
pub fn sniff_delimiter(header: &str) -> char {
    [',', ';', '\t']
        .into_iter()
        .max_by_key(|d| header.matches(*d).count())
        .unwrap_or(',')
}

/// Records with the line each starts on: quoted fields may hold delimiters, doubled
/// quotes and line breaks.
pub fn records(text: &str, delimiter: char) -> Result<Vec<(usize, Vec<String>)>, CsvSyntax> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1;
    let mut start_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
            }
            c if c == delimiter => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push((start_line, std::mem::take(&mut record)));
                line += 1;
                start_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(CsvSyntax {
            line: start_line,
            reason: "a quoted field is not closed".to_owned(),
        });
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start_line, record));
    }
    Ok(records)
}
