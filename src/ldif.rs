//! LDIF (RFC 2849): a bounded reader and a writer.
//!
//! The reader takes `slapcat`-style content files: an optional `version: 1`
//! line, comments, folded lines (a continuation line starts with one
//! space), `attr:: base64` values, `dn::` base64 DNs, attribute options
//! (`;binary`, `;lang-x`) and CRLF line ends. Change records of type `add`
//! are read as content; other change types (`modify`, `delete`, `modrdn`,
//! `moddn`) are skipped and reported. `attr:< URL` values are refused: the
//! importer never opens files or URLs named by its input. Every entry keeps
//! the line number it starts on, so problems found later can point at it.
//!
//! Input is bounded: a physical line longer than [`MAX_LINE`] or an entry
//! larger than [`MAX_ENTRY`] is an error, never an allocation without end.
//!
//! The writer folds lines at 76 columns and base64-encodes every value and
//! DN that is not an RFC 2849 SAFE-STRING (or that ends with a space).
//!
//! This module knows LDIF only: no schema, no store.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::fmt;
use std::io::{BufRead, Read, Write};

/// Longest physical line accepted, in bytes (1 MiB).
pub const MAX_LINE: usize = 1 << 20;
/// Largest entry accepted, counted as the bytes of its unfolded lines (16 MiB).
pub const MAX_ENTRY: usize = 16 << 20;
/// Column at which the writer folds lines (RFC 2849 suggests 76).
pub const FOLD_COLUMN: usize = 76;

/// Why an LDIF input cannot be read. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LdifError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, LdifError> {
    Err(LdifError {
        line,
        message: message.into(),
    })
}

/// One attribute value of an entry, as written in the file.
#[derive(Clone, PartialEq, Eq)]
pub struct LdifAttr {
    /// Attribute type as written, without options (`cn`, `userPassword`).
    pub name: String,
    /// Options as written, lowercased (`binary`, `lang-en`).
    pub options: Vec<String>,
    /// The value's bytes (base64 already decoded).
    pub value: Vec<u8>,
    /// Line the value starts on.
    pub line: usize,
}

impl LdifAttr {
    /// True for `userPassword` (by name or OID), whose values are secrets.
    pub fn is_secret(&self) -> bool {
        self.name.eq_ignore_ascii_case("userPassword") || self.name == "2.5.4.35"
    }

    /// True when the options do not change what the value means to a
    /// server that stores strings: none, or only the `binary` transfer
    /// option (RFC 4522). Language tags and other options make a value a
    /// different attribute description.
    pub fn is_plain(&self) -> bool {
        self.options.iter().all(|o| o == "binary")
    }
}

/// Values of `userPassword` never appear in debug output.
impl fmt::Debug for LdifAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LdifAttr");
        d.field("name", &self.name).field("options", &self.options);
        if self.is_secret() {
            d.field("value", &"********");
        } else {
            d.field("value", &String::from_utf8_lossy(&self.value));
        }
        d.field("line", &self.line).finish()
    }
}

/// One content record (or `changetype: add` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifEntry {
    /// The DN as written (base64 decoded); parsing it is the caller's job.
    pub dn: String,
    /// Line of the `dn:` line.
    pub line: usize,
    /// Values in file order.
    pub attrs: Vec<LdifAttr>,
}

impl LdifEntry {
    pub fn new(dn: impl Into<String>) -> LdifEntry {
        LdifEntry {
            dn: dn.into(),
            line: 0,
            attrs: Vec::new(),
        }
    }

    /// Appends a value (for building entries to write).
    pub fn push(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.attrs.push(LdifAttr {
            name: name.to_string(),
            options: Vec::new(),
            value: value.into(),
            line: 0,
        });
    }

    /// Values of `name` (case-insensitive) without language tags or other
    /// meaning-changing options ([`LdifAttr::is_plain`]).
    pub fn values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a LdifAttr> + use<'a, 'n> {
        self.attrs
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name) && a.is_plain())
    }

    /// The first plain value of `name` as text, if it is UTF-8.
    pub fn first_text(&self, name: &str) -> Option<&str> {
        self.values(name)
            .find_map(|a| std::str::from_utf8(&a.value).ok())
    }
}

/// A record that was read but is not content: a change record other than
/// `add`. The importer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub dn: String,
    pub line: usize,
    pub changetype: String,
}

/// What [`Reader::next_record`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Entry(LdifEntry),
    Skipped(SkippedRecord),
}

/// A whole file read by [`read_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ldif {
    pub entries: Vec<LdifEntry>,
    pub skipped: Vec<SkippedRecord>,
}

/// A logical (unfolded) line and the physical line it starts on.
struct Logical {
    text: Vec<u8>,
    line: usize,
}

/// Streaming LDIF reader over any [`BufRead`]; holds one record at a time.
pub struct Reader<R: BufRead> {
    input: R,
    /// Number of the last physical line read.
    line: usize,
    /// A physical line read ahead while looking for continuations.
    pending: Option<(Vec<u8>, usize)>,
    /// Whether a record or the version line has been seen.
    started: bool,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            line: 0,
            pending: None,
            started: false,
            done: false,
        }
    }

    /// Number of the last physical line read (for progress reports).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Reads one physical line without its line end; `None` at the end.
    fn physical(&mut self) -> Result<Option<(Vec<u8>, usize)>, LdifError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        if self.done {
            return Ok(None);
        }
        let mut buf = Vec::new();
        // One byte over the limit plus CRLF tells an over-long line apart.
        let limit = (MAX_LINE + 3) as u64;
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| LdifError {
                line: self.line + 1,
                message: format!("read error: {e}"),
            })?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if n as u64 == limit {
            return err(
                self.line,
                format!("line longer than {MAX_LINE} bytes; refusing it"),
            );
        }
        if buf.len() > MAX_LINE {
            return err(
                self.line,
                format!("line longer than {MAX_LINE} bytes; refusing it"),
            );
        }
        Ok(Some((buf, self.line)))
    }

    /// Reads one logical line: a physical line plus its continuations.
    /// Blank lines come back as empty text; comments are returned too
    /// (starting with `#`) so the caller can drop them.
    fn logical(&mut self, budget: &mut usize) -> Result<Option<Logical>, LdifError> {
        let Some((mut text, line)) = self.physical()? else {
            return Ok(None);
        };
        if text.first() == Some(&b' ') {
            return err(
                line,
                "continuation line (starting with a space) with nothing to continue",
            );
        }
        if text.is_empty() {
            return Ok(Some(Logical { text, line }));
        }
        loop {
            match self.physical()? {
                Some((next, n)) if next.first() == Some(&b' ') => {
                    text.extend_from_slice(&next[1..]);
                    if text.len() > *budget {
                        return err(
                            line,
                            format!("entry larger than {MAX_ENTRY} bytes; refusing it"),
                        );
                    }
                    let _ = n;
                }
                Some(other) => {
                    self.pending = Some(other);
                    break;
                }
                None => break,
            }
        }
        if text.len() > *budget {
            return err(
                line,
                format!("entry larger than {MAX_ENTRY} bytes; refusing it"),
            );
        }
        *budget -= text.len();
        Ok(Some(Logical { text, line }))
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, LdifError> {
        let mut budget = MAX_ENTRY;
        // Skip blank lines and comments before the record.
        let first = loop {
            match self.logical(&mut budget)? {
                None => return Ok(None),
                Some(l) if l.text.is_empty() || l.text[0] == b'#' => {
                    budget = MAX_ENTRY;
                }
                Some(l) => break l,
            }
        };
        let first = if !self.started && starts_with_ignore_case(&first.text, b"version:") {
            self.started = true;
            let (_, value) = split_line(&first)?;
            if value.as_slice() != b"1" {
                return err(first.line, "unsupported LDIF version (only 1 is defined)");
            }
            let mut budget = MAX_ENTRY;
            loop {
                match self.logical(&mut budget)? {
                    None => return Ok(None),
                    Some(l) if l.text.is_empty() || l.text[0] == b'#' => {
                        budget = MAX_ENTRY;
                    }
                    Some(l) => break l,
                }
            }
        } else {
            first
        };
        self.started = true;
        budget = MAX_ENTRY.saturating_sub(first.text.len());

        let (name, value) = split_line(&first)?;
        if !name.name.eq_ignore_ascii_case("dn") || !name.options.is_empty() {
            return err(
                first.line,
                format!("a record must start with \"dn:\", found {:?}", name.name),
            );
        }
        let dn = String::from_utf8(value).map_err(|_| LdifError {
            line: first.line,
            message: "the DN is not valid UTF-8".into(),
        })?;
        let mut entry = LdifEntry {
            dn,
            line: first.line,
            attrs: Vec::new(),
        };
        let mut changetype: Option<String> = None;
        let mut seen_attr = false;
        while let Some(l) = self.logical(&mut budget)? {
            if l.text.is_empty() {
                break;
            }
            if l.text[0] == b'#' {
                continue;
            }
            if let Some(ct) = &changetype {
                if ct != "add" {
                    // The body of a skipped change record is not parsed:
                    // `-` separators and modify lines are not content.
                    continue;
                }
            }
            let (desc, value) = split_line(&l)?;
            if !seen_attr && changetype.is_none() && desc.name.eq_ignore_ascii_case("control") {
                // RFC 2849 controls precede the changetype; they mean
                // nothing to an import.
                continue;
            }
            if !seen_attr && changetype.is_none() && desc.name.eq_ignore_ascii_case("changetype") {
                let ct = String::from_utf8_lossy(&value).trim().to_ascii_lowercase();
                changetype = Some(ct);
                continue;
            }
            seen_attr = true;
            entry.attrs.push(LdifAttr {
                name: desc.name,
                options: desc.options,
                value,
                line: l.line,
            });
        }
        match changetype {
            Some(ct) if ct != "add" => Ok(Some(Record::Skipped(SkippedRecord {
                dn: entry.dn,
                line: entry.line,
                changetype: ct,
            }))),
            _ => Ok(Some(Record::Entry(entry))),
        }
    }
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// An attribute description: type and options.
struct Desc {
    name: String,
    options: Vec<String>,
}

/// RFC 2849 `AttributeDescription`: a descriptor (`[A-Za-z][A-Za-z0-9-]*`)
/// or a numeric OID, then `;option`s of `[A-Za-z0-9-]`.
fn parse_desc(raw: &[u8], line: usize) -> Result<Desc, LdifError> {
    let text = std::str::from_utf8(raw).map_err(|_| LdifError {
        line,
        message: "attribute name is not ASCII".into(),
    })?;
    let mut parts = text.split(';');
    let name = parts.next().unwrap_or_default();
    let descriptor = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !name.is_empty()
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(descriptor || oid) {
        return err(line, format!("invalid attribute name {name:?}"));
    }
    let mut options = Vec::new();
    for o in parts {
        if o.is_empty() || !o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return err(line, format!("invalid attribute option {o:?} of {name}"));
        }
        options.push(o.to_ascii_lowercase());
    }
    Ok(Desc {
        name: name.to_string(),
        options,
    })
}

/// Splits `desc: value`, `desc:: base64` (decoded) and refuses `desc:< url`.
fn split_line(l: &Logical) -> Result<(Desc, Vec<u8>), LdifError> {
    let Some(colon) = l.text.iter().position(|&b| b == b':') else {
        return err(l.line, "expected \"attribute: value\" (no colon found)");
    };
    let desc = parse_desc(&l.text[..colon], l.line)?;
    let rest = &l.text[colon + 1..];
    match rest.first() {
        Some(b':') => {
            let b64: Vec<u8> = rest[1..]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let value = B64.decode(&b64).map_err(|e| LdifError {
                line: l.line,
                message: format!("invalid base64 value of {}: {e}", desc.name),
            })?;
            Ok((desc, value))
        }
        Some(b'<') => err(
            l.line,
            format!(
                "{}:< takes its value from a URL; this importer reads no files or URLs \
                 named by its input: inline the value (base64 with \"::\")",
                desc.name
            ),
        ),
        _ => {
            let value = trim_leading_spaces(rest);
            Ok((desc, value.to_vec()))
        }
    }
}

fn trim_leading_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    &s[start..]
}

/// Reads a whole input. Fatal syntax errors stop the read; non-`add`
/// change records are collected in [`Ldif::skipped`].
pub fn read_all(input: impl BufRead) -> Result<Ldif, LdifError> {
    read_with_progress(input, &mut |_| {})
}

/// [`read_all`], calling `progress(entries_read)` after every entry.
pub fn read_with_progress(
    input: impl BufRead,
    progress: &mut dyn FnMut(usize),
) -> Result<Ldif, LdifError> {
    let mut reader = Reader::new(input);
    let mut out = Ldif::default();
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Entry(e) => {
                out.entries.push(e);
                progress(out.entries.len());
            }
            Record::Skipped(s) => out.skipped.push(s),
        }
    }
    Ok(out)
}

/// [`read_all`] of a string.
pub fn parse_str(text: &str) -> Result<Ldif, LdifError> {
    read_all(text.as_bytes())
}

// --- writer ---

/// RFC 2849 SAFE-STRING: SAFE-INIT-CHAR (any of 0x01–0x7F but NUL, LF, CR,
/// space, `:` and `<`) then SAFE-CHARs (0x01–0x7F but NUL, LF, CR). A value
/// ending in a space is also base64-encoded, as RFC 2849 note 8 advises,
/// so no reader trims it.
pub fn is_safe_string(value: &[u8]) -> bool {
    let safe_char = |b: u8| matches!(b, 0x01..=0x09 | 0x0B..=0x0C | 0x0E..=0x7F);
    match value.first() {
        None => true,
        Some(&first) => {
            safe_char(first)
                && !matches!(first, b' ' | b':' | b'<')
                && value.iter().all(|&b| safe_char(b))
                && value.last() != Some(&b' ')
        }
    }
}

/// Writes LDIF records, folded at [`FOLD_COLUMN`].
pub struct Writer<W: Write> {
    out: W,
    first: bool,
    /// The record being written (reused from record to record).
    record: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Starts a file with `version: 1`.
    pub fn new(mut out: W) -> std::io::Result<Writer<W>> {
        out.write_all(b"version: 1\n")?;
        Ok(Writer {
            out,
            first: true,
            record: Vec::new(),
        })
    }

    /// Writes a comment line.
    pub fn comment(&mut self, text: &str) -> std::io::Result<()> {
        let line = format!("# {}", text.replace(['\n', '\r'], " "));
        let mut folded = Vec::new();
        fold(&mut folded, line.as_bytes());
        self.out.write_all(&folded)
    }

    /// Writes one entry: `dn`, then each value, then a blank line.
    pub fn entry(&mut self, entry: &LdifEntry) -> std::io::Result<()> {
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        push_line(&mut record, "dn", &[], entry.dn.as_bytes());
        for a in &entry.attrs {
            push_line(&mut record, &a.name, &a.options, &a.value);
        }
        let written = self.record(&record);
        self.record = record;
        written
    }

    /// Writes one entry made of lines [`push_line`] appended (the `dn`
    /// line first), then a blank line.
    pub fn record(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if self.first {
            self.out.write_all(b"\n")?;
            self.first = false;
        }
        self.out.write_all(lines)?;
        self.out.write_all(b"\n")
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Appends the line of one value to `out`: `name`, its options, then the
/// value as it is if [`is_safe_string`], else in base64; folded at
/// [`FOLD_COLUMN`].
pub fn push_line(out: &mut Vec<u8>, name: &str, options: &[String], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name.as_bytes());
    for o in options {
        out.push(b';');
        out.extend_from_slice(o.as_bytes());
    }
    if is_safe_string(value) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
    } else {
        out.extend_from_slice(b":: ");
        let encoded = B64.encode(value);
        out.extend_from_slice(encoded.as_bytes());
    }
    fold_tail(out, start);
}

/// Appends `line` to `out`, folded.
fn fold(out: &mut Vec<u8>, line: &[u8]) {
    let start = out.len();
    out.extend_from_slice(line);
    fold_tail(out, start);
}

/// Folds the logical line `out[start..]` in place and ends it: the first
/// physical line holds 76 bytes, each continuation a space and 75 more.
/// Written lines are ASCII (anything else is base64), so no character is
/// split.
fn fold_tail(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len <= FOLD_COLUMN {
        out.push(b'\n');
        return;
    }
    let line = out.split_off(start);
    let (head, mut rest) = line.split_at(FOLD_COLUMN);
    out.extend_from_slice(head);
    out.push(b'\n');
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(FOLD_COLUMN - 1));
        out.push(b' ');
        out.extend_from_slice(chunk);
        out.push(b'\n');
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: &LdifEntry, name: &str) -> Vec<String> {
        e.values(name)
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .collect()
    }

    #[test]
    fn reads_content_with_folding_base64_comments_and_crlf() {
        let input = "version: 1\r\n\
                     # a comment\r\n\
                     #  folded comment\r\n\
                     \r\n\
                     dn: uid=alice,ou=People,dc=example,dc=org\r\n\
                     objectClass: inetOrgPerson\r\n\
                     cn: Alice\r\n  Liddell\r\n\
                     description:: w4lsw6hu\r\n\
                     sn;lang-fr: Lidelle\r\n\
                     jpegPhoto;binary:: AAEC\r\n\
                     # inside\r\n\
                     mail:   alice@example.org\r\n\
                     \r\n\
                     \r\n\
                     dn:: dWlkPWLDqWEsZGM9ZXhhbXBsZSxkYz1vcmc=\r\n\
                     uid: bea\r\n";
        let ldif = parse_str(input).expect("parses");
        assert_eq!(ldif.entries.len(), 2);
        let a = &ldif.entries[0];
        assert_eq!(a.dn, "uid=alice,ou=People,dc=example,dc=org");
        assert_eq!(a.line, 5);
        assert_eq!(text(a, "CN"), vec!["Alice Liddell"]);
        assert_eq!(text(a, "description"), vec!["Élèn"]);
        assert!(
            text(a, "sn").is_empty(),
            "language-tagged values are not plain"
        );
        assert_eq!(a.attrs[3].options, vec!["lang-fr"]);
        assert_eq!(
            a.values("jpegPhoto").next().map(|v| v.value.clone()),
            Some(vec![0, 1, 2])
        );
        assert_eq!(text(a, "mail"), vec!["alice@example.org"]);
        assert_eq!(a.attrs[1].line, 7);
        assert_eq!(a.attrs[2].line, 9);
        let b = &ldif.entries[1];
        assert_eq!(b.dn, "uid=béa,dc=example,dc=org");
        assert_eq!(b.line, 16);
    }

    #[test]
    fn change_records() {
        let input = "dn: cn=a,dc=x\nchangetype: add\ncn: a\n\n\
                     dn: cn=b,dc=x\nchangetype: modify\nreplace: cn\ncn: b\n-\n\n\
                     dn: cn=c,dc=x\ncontrol: 1.2.3 true\nchangetype: delete\n";
        let ldif = parse_str(input).expect("parses");
        assert_eq!(ldif.entries.len(), 1);
        assert_eq!(ldif.entries[0].first_text("cn"), Some("a"));
        assert_eq!(ldif.skipped.len(), 2);
        assert_eq!(ldif.skipped[0].changetype, "modify");
        assert_eq!(ldif.skipped[0].line, 5);
        assert_eq!(ldif.skipped[1].changetype, "delete");
        assert_eq!(ldif.skipped[1].line, 11);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("dn: cn=a\ncn:< file:///etc/passwd\n", 2, "URL"),
            ("dn: cn=a\ncn:: !!!\n", 2, "base64"),
            ("dn: cn=a\nno colon here\n", 2, "colon"),
            ("cn: a\n", 1, "dn:"),
            ("\n\n dangling\n", 3, "continuation"),
            ("dn: cn=a\nbad_name: x\n", 2, "invalid attribute name"),
            ("version: 2\n", 1, "version"),
            ("dn:: //79\n", 1, "UTF-8"),
        ];
        for (input, line, needle) in cases {
            let e = parse_str(input).expect_err(input);
            assert_eq!(e.line, *line, "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e}");
        }
    }

    #[test]
    fn bounds() {
        let long = format!("dn: cn=a\ndescription: {}\n", "x".repeat(MAX_LINE + 10));
        let e = parse_str(&long).expect_err("line too long");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("longer than"));

        // Many folded continuation lines make one oversized entry.
        let mut big = String::from("dn: cn=a\ndescription: x\n");
        let chunk = format!(" {}\n", "y".repeat(MAX_LINE - 1));
        for _ in 0..17 {
            big.push_str(&chunk);
        }
        let e = parse_str(&big).expect_err("entry too large");
        assert!(e.message.contains("entry larger"), "{e}");
    }

    #[test]
    fn safe_strings() {
        assert!(is_safe_string(b"alice"));
        assert!(is_safe_string(b""));
        for unsafe_value in [
            &b" lead"[..],
            b":colon",
            b"<less",
            b"trail ",
            b"new\nline",
            b"cr\r",
            "é".as_bytes(),
            b"\0",
        ] {
            assert!(!is_safe_string(unsafe_value), "{unsafe_value:?}");
        }
    }

    #[test]
    fn writer_round_trips_and_folds() {
        let mut e = LdifEntry::new("cn=Zoë,ou=users,dc=example,dc=com");
        e.push("cn", "Zoë");
        e.push("description", "x".repeat(200));
        e.push("sn", " leading space");
        e.push("mail", "zoe@example.com");
        e.push("jpegPhoto", vec![0u8, 255, 10, 13]);
        let mut w = Writer::new(Vec::new()).expect("writer");
        w.comment("exported").expect("comment");
        w.entry(&e).expect("entry");
        let mut second = LdifEntry::new("cn=plain,dc=example,dc=com");
        second.push("cn", "plain");
        w.entry(&second).expect("entry");
        let bytes = w.into_inner();
        let out = String::from_utf8(bytes).expect("ascii");
        for l in out.lines() {
            assert!(l.len() <= FOLD_COLUMN, "{l:?}");
            assert!(l.is_ascii());
        }
        assert!(out.contains("dn:: "));
        assert!(out.contains("\ncn: plain\n"));
        let back = parse_str(&out).expect("reads back");
        assert_eq!(back.entries.len(), 2);
        let r = &back.entries[0];
        assert_eq!(r.dn, e.dn);
        let values: Vec<(String, Vec<u8>)> = r
            .attrs
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        let expected: Vec<(String, Vec<u8>)> = e
            .attrs
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn debug_hides_passwords() {
        let ldif = parse_str("dn: cn=a\nuserPassword: hunter2\n").expect("parses");
        let shown = format!("{:?}", ldif);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"));
    }
}
