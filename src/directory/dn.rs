//! Distinguished names per RFC 4514: parsing, normalising, escaping.
//!
//! A [`Dn`] keeps its RDNs as written (for display) and its normalised form,
//! computed once when it is built, so comparing, hashing and ancestry tests
//! on hot paths cost a string comparison. Pure logic: no I/O, no BER.

use super::schema;
use compact_str::CompactString;
use smallvec::{smallvec, SmallVec};
use std::fmt;
use std::str::FromStr;

/// Longest DN string accepted (bytes). Longer input is refused before any
/// parsing work is done.
pub const MAX_DN_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN: {0}")]
pub struct DnError(pub String);

/// One attribute-value assertion of an RDN, e.g. `cn=alice`.
#[derive(Debug, Clone)]
pub struct Ava {
    /// Attribute type as written (descriptor or dotted OID).
    pub attr: CompactString,
    /// Unescaped value. A value written in the `#hex` (BER) form is kept as
    /// that literal string, `#` included. Up to 24 bytes held inline.
    pub value: CompactString,
}

/// A relative distinguished name: one or more AVAs joined by `+`.
#[derive(Debug, Clone)]
pub struct Rdn {
    /// One AVA held inline (nearly every RDN); more spill to the heap.
    pub avas: SmallVec<[Ava; 1]>,
}

/// A parsed DN, leftmost (most specific) RDN first. Equality and hashing use
/// the normalised form: attribute types lowercased (and known aliases/OIDs
/// mapped to their primary name), values compared case-insensitively with
/// insignificant spaces removed.
#[derive(Debug, Clone)]
pub struct Dn {
    rdns: Vec<Rdn>,
    /// The normalised form (see [`Dn::normalized`]), computed when the DN is
    /// built so comparisons never redo it. In it `,` and `+` occur only as
    /// separators: special characters of values are hex-escaped.
    norm: String,
}

impl Ava {
    pub fn new(attr: &str, value: &str) -> Ava {
        Ava {
            attr: attr.into(),
            value: value.into(),
        }
    }

    /// `type=value` in normalised form.
    fn normalized(&self) -> String {
        let mut s = String::with_capacity(self.attr.len() + 1 + self.value.len());
        self.push_normalized(&mut s);
        s
    }

    /// [`Ava::normalized`] appended to `out`.
    fn push_normalized(&self, out: &mut String) {
        push_normalized_type(out, &self.attr);
        out.push('=');
        push_normalized_value(out, &self.value);
    }
}

impl Rdn {
    /// A single-valued RDN `attr=value`.
    pub fn new(attr: &str, value: &str) -> Rdn {
        Rdn {
            avas: smallvec![Ava::new(attr, value)],
        }
    }

    /// Normalised form: each AVA normalised, sorted, joined with `+`.
    pub fn normalized(&self) -> String {
        let mut s = String::new();
        self.push_normalized(&mut s);
        s
    }

    /// [`Rdn::normalized`] appended to `out`: a single AVA (nearly every
    /// RDN) without a string of its own.
    fn push_normalized(&self, out: &mut String) {
        if let [ava] = &self.avas[..] {
            return ava.push_normalized(out);
        }
        let mut parts: Vec<String> = self.avas.iter().map(Ava::normalized).collect();
        parts.sort();
        out.push_str(&parts.join("+"));
    }
}

/// The normalised spelling of an attribute type: the schema's primary name
/// in lowercase when known (`2.5.4.3`, `commonName`, `CN` → `cn`), else the
/// type lowercased.
pub fn normalized_type(attr: &str) -> String {
    let mut s = String::new();
    push_normalized_type(&mut s, attr);
    s
}

/// [`normalized_type`] appended to `out`.
fn push_normalized_type(out: &mut String, attr: &str) {
    // The types DNs are made of here, already in their normal spelling.
    if let "cn" | "ou" | "dc" | "uid" | "o" = attr {
        return out.push_str(attr);
    }
    let start = out.len();
    out.push_str(schema::attribute(attr).map_or(attr, |at| at.name));
    out[start..].make_ascii_lowercase();
}

/// True when two attribute types name the same thing (case-insensitive,
/// aliases and OIDs of known types resolved).
fn same_type(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match (schema::attribute(a), schema::attribute(b)) {
        (Some(x), Some(y)) => std::ptr::eq(x, y),
        _ => false,
    }
}

fn push_hex_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

/// Appends the normalised value: folded (trimmed, spaces collapsed,
/// lowercased), then special characters hex-escaped so that the result is
/// unambiguous.
fn push_normalized_value(out: &mut String, value: &str) {
    // Most values (user and group names, dc=…) are plain ASCII: no space
    // to fold, nothing to escape; lowercasing is then all there is to do.
    let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@');
    if value.bytes().all(|b| plain(&b)) {
        let start = out.len();
        out.push_str(value);
        out[start..].make_ascii_lowercase();
        return;
    }
    push_folded_escaped(out, value);
}

/// [`push_normalized_value`] without its shortcut.
fn push_folded_escaped(out: &mut String, value: &str) {
    for (i, c) in schema::fold_case_ignore(value).enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '\0' => {
                // All ASCII, so the cast is exact.
                push_hex_escape(out, c as u8)
            }
            '#' if i == 0 => push_hex_escape(out, b'#'),
            _ => out.push(c),
        }
    }
}

/// The normalised form of `rdns`; `len` the length of the string they were
/// parsed from, which the normalised form rarely exceeds.
fn normalize_rdns(rdns: &[Rdn], len: usize) -> String {
    let mut out = String::with_capacity(len);
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        rdn.push_normalized(&mut out);
    }
    out
}

impl Dn {
    /// Parses an RFC 4514 string. The empty string is the root DN.
    ///
    /// Tolerates spaces around `=`, `,` and `+`, `;` as an RDN separator
    /// (RFC 2253 §4) and quoted values (RFC 1779); refuses anything else
    /// that is not well formed.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        if s.len() > MAX_DN_LEN {
            return Err(DnError(format!(
                "longer than {MAX_DN_LEN} bytes ({} bytes)",
                s.len()
            )));
        }
        Parser::new(s).dn()
    }

    /// The leftmost RDN of `s` and the text of the DN above it, for a
    /// caller that keeps parents parsed: `child_rdn` of the two is what
    /// [`Dn::parse`] makes of `s`. `None` when `s` is one RDN or the root,
    /// or is not well formed up to its first separator (parse it whole,
    /// for the error).
    pub fn split_leaf(s: &str) -> Option<(Rdn, &str)> {
        if s.len() > MAX_DN_LEN {
            return None;
        }
        let mut p = Parser::new(s);
        let mut avas = SmallVec::new();
        p.rdn_into(&mut avas).ok()?;
        if !matches!(p.peek(), Some(b',' | b';')) {
            return None;
        }
        p.pos += 1;
        p.skip_spaces();
        // An empty parent would be the root: `uid=x,` is not a DN.
        let parent = s.get(p.pos..).filter(|rest| !rest.is_empty())?;
        Some((Rdn { avas }, parent))
    }

    /// The root DN (empty).
    pub fn root() -> Dn {
        Dn {
            rdns: Vec::new(),
            norm: String::new(),
        }
    }

    /// Builds a DN from RDNs, leftmost first.
    pub fn from_rdns(rdns: Vec<Rdn>) -> Dn {
        let len = rdns
            .iter()
            .flat_map(|r| &r.avas)
            .map(|a| a.attr.len() + a.value.len() + 2)
            .sum();
        let norm = normalize_rdns(&rdns, len);
        Dn { rdns, norm }
    }

    /// The RDNs, leftmost (most specific) first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The leftmost RDN; `None` for the root.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// Number of RDNs (0 for the root).
    pub fn depth(&self) -> usize {
        self.rdns.len()
    }

    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// `attr=value,<self>`.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        self.child_rdn(Rdn::new(attr, value))
    }

    /// `<rdn>,<self>`.
    pub fn child_rdn(&self, rdn: Rdn) -> Dn {
        let mut norm = String::with_capacity(self.norm.len() + 32);
        rdn.push_normalized(&mut norm);
        if !self.is_root() {
            norm.push(',');
            norm.push_str(&self.norm);
        }
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn);
        rdns.extend(self.rdns.iter().cloned());
        Dn { rdns, norm }
    }

    /// `<rdns…>,<self>`, `rdns` leftmost first: several levels down at
    /// once, with one copy of this DN's RDNs instead of one per level.
    pub fn descendant<const N: usize>(&self, rdns: [Rdn; N]) -> Dn {
        let mut norm = String::with_capacity(self.norm.len() + 16 * N);
        let mut all = Vec::with_capacity(self.rdns.len() + N);
        for (i, rdn) in rdns.into_iter().enumerate() {
            if i > 0 {
                norm.push(',');
            }
            rdn.push_normalized(&mut norm);
            all.push(rdn);
        }
        if !self.is_root() {
            if N > 0 {
                norm.push(',');
            }
            norm.push_str(&self.norm);
        }
        all.extend(self.rdns.iter().cloned());
        Dn { rdns: all, norm }
    }

    /// The DN without its leftmost RDN; `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        let rest = self.rdns.get(1..)?;
        // `,` occurs in the normalised form only between RDNs.
        let norm = match self.norm.split_once(',') {
            Some((_, tail)) => tail.to_string(),
            None => String::new(),
        };
        Some(Dn {
            rdns: rest.to_vec(),
            norm,
        })
    }

    /// The value of the leftmost RDN if it is a single AVA of type `attr`
    /// (compared case-insensitively), e.g. `first_value("cn")` of
    /// `cn=alice,ou=users,…` is `alice`.
    pub fn first_value(&self, attr: &str) -> Option<&str> {
        match self.rdns.first()?.avas.as_slice() {
            [ava] if same_type(&ava.attr, attr) => Some(&ava.value),
            _ => None,
        }
    }

    /// True when `self` equals `ancestor` or lies below it.
    pub fn ends_with(&self, ancestor: &Dn) -> bool {
        if ancestor.is_root() {
            return true;
        }
        let (own, anc) = (self.norm.as_bytes(), ancestor.norm.as_bytes());
        if own.len() == anc.len() {
            return own == anc;
        }
        // A suffix that starts right after a separator is a run of whole
        // RDNs, because `,` never occurs escaped in the normalised form.
        own.len() > anc.len()
            && own.ends_with(anc)
            && own.get(own.len() - anc.len() - 1) == Some(&b',')
    }

    /// The RDNs of `self` below `ancestor` (leftmost first), or `None` when
    /// `self` is not `ancestor` or below it.
    pub fn relative_to(&self, ancestor: &Dn) -> Option<&[Rdn]> {
        if !self.ends_with(ancestor) {
            return None;
        }
        self.rdns.get(..self.rdns.len() - ancestor.rdns.len())
    }

    /// Normalised string used for comparison and as a map key: types as
    /// their lowercase primary schema name, values folded, AVAs of an RDN
    /// sorted, specials hex-escaped (`cn=a\2cb,ou=users,dc=example,dc=com`).
    pub fn normalized(&self) -> String {
        self.norm.clone()
    }

    /// [`Dn::normalized`], the DN's own string.
    pub fn into_normalized(self) -> String {
        self.norm
    }

    /// [`Dn::normalized`] without allocating.
    pub fn normalized_str(&self) -> &str {
        &self.norm
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Dn) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Dn {}

impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.norm.hash(state)
    }
}

impl FromStr for Dn {
    type Err = DnError;
    fn from_str(s: &str) -> Result<Dn, DnError> {
        Dn::parse(s)
    }
}

/// Writes `value` escaped as RFC 4514 §2.4 requires.
fn write_escaped(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let plain = |b: u8| !matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'\0');
    let ends = |b: Option<&u8>| b.is_some_and(|&b| b == b' ');
    if value.bytes().all(plain)
        && !value.starts_with('#')
        && !ends(value.as_bytes().first())
        && !ends(value.as_bytes().last())
    {
        return f.write_str(value);
    }
    write_escaped_chars(f, value)
}

/// [`write_escaped`] without its shortcut.
fn write_escaped_chars(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    for (i, c) in value.char_indices() {
        let first = i == 0;
        let last = i + c.len_utf8() == value.len();
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
            '\0' => f.write_str("\\00")?,
            '#' if first => f.write_str("\\#")?,
            ' ' if first || last => f.write_str("\\ ")?,
            _ => fmt::Write::write_char(f, c)?,
        }
    }
    Ok(())
}

impl fmt::Display for Ava {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.attr)?;
        f.write_str("=")?;
        write_escaped(f, &self.value)
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ava) in self.avas.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            ava.fmt(f)?;
        }
        Ok(())
    }
}

/// RFC 4514 string form, escaping values as section 2.4 requires.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            rdn.fmt(f)?;
        }
        Ok(())
    }
}

/// A single-pass RFC 4514 parser over the input bytes (no recursion).
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn err(&self, what: &str) -> DnError {
        DnError(format!("{what} at offset {}", self.pos))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn dn(mut self) -> Result<Dn, DnError> {
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(Dn::root());
        }
        // At most one RDN per separator and one more (escaped separators
        // overcount): one allocation for the list.
        let separators = self.s.bytes().filter(|b| matches!(b, b',' | b';')).count();
        let mut rdns = Vec::with_capacity(separators + 1);
        loop {
            // Built where it is kept: moving AVAs between the parser's
            // results and the lists cost more than reading them.
            rdns.push(Rdn {
                avas: SmallVec::new(),
            });
            if let Some(rdn) = rdns.last_mut() {
                self.rdn_into(&mut rdn.avas)?;
            }
            match self.peek() {
                None => break,
                Some(b',' | b';') => {
                    self.pos += 1;
                    self.skip_spaces();
                    if self.peek().is_none() {
                        return Err(self.err("empty RDN after separator"));
                    }
                }
                Some(_) => return Err(self.err("unexpected character after value")),
            }
        }
        Ok(Dn::from_rdns(rdns))
    }

    /// The AVAs of one RDN (joined by `+`), added to `avas`.
    fn rdn_into(&mut self, avas: &mut SmallVec<[Ava; 1]>) -> Result<(), DnError> {
        self.ava_into(avas)?;
        while self.peek() == Some(b'+') {
            self.pos += 1;
            self.ava_into(avas)?;
        }
        Ok(())
    }

    /// `type=value`, with the spaces around either, added to `avas`.
    fn ava_into(&mut self, avas: &mut SmallVec<[Ava; 1]>) -> Result<(), DnError> {
        self.skip_spaces();
        let attr = self.attr_type()?;
        self.skip_spaces();
        if self.peek() != Some(b'=') {
            return Err(self.err("expected '=' after attribute type"));
        }
        self.pos += 1;
        self.skip_spaces();
        let value = self.value()?;
        self.skip_spaces();
        avas.push(Ava { attr, value });
        Ok(())
    }

    /// `descr` (ALPHA *(ALPHA / DIGIT / "-")) or `numericoid`.
    fn attr_type(&mut self) -> Result<CompactString, DnError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'-') {
                    self.pos += 1;
                }
            }
            Some(c) if c.is_ascii_digit() => loop {
                if !matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                    return Err(self.err("malformed numeric OID"));
                }
                while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                    self.pos += 1;
                }
                if self.peek() == Some(b'.') {
                    self.pos += 1;
                } else {
                    break;
                }
            },
            _ => return Err(self.err("expected an attribute type")),
        }
        Ok(self.s.get(start..self.pos).unwrap_or_default().into())
    }

    fn value(&mut self) -> Result<CompactString, DnError> {
        match self.peek() {
            Some(b'#') => self.hex_value(),
            Some(b'"') => self.quoted_value(),
            _ => self.string_value(),
        }
    }

    /// `#` followed by hex pairs (the BER form), kept as written.
    fn hex_value(&mut self) -> Result<CompactString, DnError> {
        let start = self.pos;
        self.pos += 1;
        while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits = self.pos - start - 1;
        if digits == 0 || !digits.is_multiple_of(2) {
            return Err(self.err("malformed #hex value"));
        }
        if !matches!(self.peek(), None | Some(b' ' | b',' | b'+' | b';')) {
            return Err(self.err("malformed #hex value"));
        }
        Ok(self.s.get(start..self.pos).unwrap_or_default().into())
    }

    /// The character after a backslash: a special character or a hex pair.
    fn escape(&mut self) -> Result<u8, DnError> {
        let Some(c) = self.peek() else {
            return Err(self.err("dangling escape"));
        };
        match c {
            b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\' => {
                self.pos += 1;
                Ok(c)
            }
            _ => {
                let hi = hex_digit(c);
                let lo = self
                    .s
                    .as_bytes()
                    .get(self.pos + 1)
                    .copied()
                    .and_then(hex_digit);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        self.pos += 2;
                        Ok(hi << 4 | lo)
                    }
                    _ => Err(self.err("invalid escape")),
                }
            }
        }
    }

    fn utf8(&self, bytes: Vec<u8>) -> Result<CompactString, DnError> {
        CompactString::from_utf8(bytes).map_err(|_| self.err("escaped bytes are not UTF-8"))
    }

    fn string_value(&mut self) -> Result<CompactString, DnError> {
        // Most values hold no escape: copied in one piece, trailing spaces
        // (not part of the value) left out.
        let start = self.pos;
        let rest = self.s.as_bytes().get(start..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|b| matches!(b, b',' | b'+' | b';' | b'\\' | b'"' | b'<' | b'>' | b'\0'))
            .unwrap_or(rest.len());
        if !matches!(rest.get(end), Some(b'\\' | b'"' | b'<' | b'>' | b'\0')) {
            self.pos += end;
            let value = self.s.get(start..start + end).unwrap_or_default();
            return Ok(value.trim_end_matches(' ').into());
        }
        self.escaped_string_value()
    }

    /// [`Parser::string_value`] byte by byte, escapes resolved.
    fn escaped_string_value(&mut self) -> Result<CompactString, DnError> {
        let mut buf = Vec::new();
        // Length of `buf` up to its last significant byte: unescaped
        // trailing spaces are not part of the value.
        let mut significant = 0;
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' | b';' => break,
                b'\\' => {
                    self.pos += 1;
                    buf.push(self.escape()?);
                    significant = buf.len();
                }
                b'"' | b'<' | b'>' | b'\0' => {
                    return Err(self.err("character must be escaped in a value"))
                }
                b' ' => {
                    buf.push(c);
                    self.pos += 1;
                }
                _ => {
                    buf.push(c);
                    self.pos += 1;
                    significant = buf.len();
                }
            }
        }
        buf.truncate(significant);
        self.utf8(buf)
    }

    fn quoted_value(&mut self) -> Result<CompactString, DnError> {
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted value")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    buf.push(self.escape()?);
                }
                Some(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        self.utf8(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &[&str] = &[
        "alice",
        "Alice",
        "user00042",
        "a.b-c_d@x",
        "ALL-CAPS.42",
        "two  spaces",
        " lead",
        "trail ",
        "#hash",
        "in#side",
        "a,b",
        "a+b",
        "q\"uote",
        "semi;colon",
        "<x>",
        "back\\slash",
        "nul\0",
        "Ünïcödé",
        "ß",
        "tab\there",
        "",
        "=eq",
    ];

    /// A DN parsed as its leftmost RDN below a parent parsed apart is the
    /// DN parsed whole: RDNs as written, normalised form; what is not a
    /// DN is not split into one.
    #[test]
    fn a_leaf_below_its_parent_is_the_dn_parsed_whole() {
        let dns = [
            "uid=user00123,ou=users,dc=example,dc=com",
            "UID = Alice , OU=Users;DC=Example, DC=Com",
            r"cn=a\,b,ou=groups,dc=example,dc=com",
            r#"cn="q,uoted",ou=groups,dc=example,dc=com"#,
            "cn=x+sn=y,ou=users,dc=example,dc=com",
            "cn=#0403616263,dc=com",
            "cn=a-very-long-value-beyond-twenty-four-bytes,dc=com",
            "2.5.4.3=x,dc=com",
        ];
        for text in dns {
            let whole = Dn::parse(text).expect("dn");
            let (leaf, parent) = Dn::split_leaf(text).expect("split");
            let joined = Dn::parse(parent).expect("parent").child_rdn(leaf);
            assert_eq!(joined.normalized_str(), whole.normalized_str(), "{text}");
            assert_eq!(joined.to_string(), whole.to_string(), "{text}");
            assert_eq!(
                format!("{:?}", joined.rdns()),
                format!("{:?}", whole.rdns())
            );
        }
        for text in [
            "",
            "  ",
            "dc=com",
            "uid=x,",
            "uid=x, ",
            "uid=x;",
            "=x,dc=com",
            "uid=x y\"z,dc=com",
        ] {
            assert!(Dn::split_leaf(text).is_none(), "{text:?}");
        }
    }

    #[test]
    fn shortcuts_give_what_the_full_rules_give() {
        struct Slow<'a>(&'a str);
        impl fmt::Display for Slow<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_escaped_chars(f, self.0)
            }
        }
        struct Fast<'a>(&'a str);
        impl fmt::Display for Fast<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_escaped(f, self.0)
            }
        }
        for v in VALUES {
            let (mut fast, mut slow) = (String::new(), String::new());
            push_normalized_value(&mut fast, v);
            push_folded_escaped(&mut slow, v);
            assert_eq!(fast, slow, "normalised {v:?}");
            assert_eq!(Fast(v).to_string(), Slow(v).to_string(), "escaped {v:?}");
        }
        // A value without escapes is copied in one piece: what the
        // byte-by-byte reading gives.
        for v in VALUES {
            for input in [v.to_string(), format!("{v}  ,dc=x"), format!("{v}+cn=y")] {
                let (mut fast, mut slow) = (Parser::new(&input), Parser::new(&input));
                assert_eq!(
                    (fast.string_value(), fast.pos),
                    (slow.escaped_string_value(), slow.pos),
                    "value {input:?}"
                );
            }
        }
        for name in ["cn", "ou", "dc", "uid", "o"] {
            let at = schema::attribute(name).expect("in the schema");
            assert_eq!(at.name.to_ascii_lowercase(), name);
            assert_eq!(normalized_type(name), name);
        }
    }

    #[test]
    fn descendant_is_child_of_child() {
        for base in ["dc=example,dc=com", "", "O=Big Corp+C=X"] {
            let base = dn(base);
            for v in VALUES {
                let nested = base.child("ou", "users").child("cn", v);
                let direct = base.descendant([Rdn::new("cn", v), Rdn::new("ou", "users")]);
                assert_eq!(direct.to_string(), nested.to_string());
                assert_eq!(direct.normalized_str(), nested.normalized_str());
                assert_eq!(avas(&direct), avas(&nested));
            }
        }
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn avas(d: &Dn) -> Vec<Vec<(String, String)>> {
        d.rdns()
            .iter()
            .map(|r| {
                r.avas
                    .iter()
                    .map(|a| (a.attr.to_string(), a.value.to_string()))
                    .collect()
            })
            .collect()
    }

    fn pairs(v: &[&[(&str, &str)]]) -> Vec<Vec<(String, String)>> {
        v.iter()
            .map(|r| {
                r.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn simple_and_root() {
        let d = dn("cn=alice,ou=users,dc=example,dc=com");
        assert_eq!(d.depth(), 4);
        assert_eq!(
            avas(&d),
            pairs(&[
                &[("cn", "alice")],
                &[("ou", "users")],
                &[("dc", "example")],
                &[("dc", "com")]
            ])
        );
        assert!(dn("").is_root());
        assert!(dn("   ").is_root());
        assert_eq!(dn("").normalized(), "");
        assert_eq!(Dn::root(), dn(""));
        assert_eq!(dn("").to_string(), "");
    }

    #[test]
    fn spacing_is_tolerated() {
        let d = dn("  cn = alice , ou=users ,  dc = example,dc=com  ");
        assert_eq!(d, dn("cn=alice,ou=users,dc=example,dc=com"));
        assert_eq!(d.first_value("cn"), Some("alice"));
        let m = dn("cn=a + sn=b ,dc=x");
        assert_eq!(
            avas(&m),
            pairs(&[&[("cn", "a"), ("sn", "b")], &[("dc", "x")]])
        );
        // RFC 2253 `;` separator.
        assert_eq!(dn("cn=a;dc=x"), dn("cn=a,dc=x"));
    }

    #[test]
    fn escapes() {
        let d = dn(r#"cn=a\,b\+c\"d\\e\<f\>g\;h\=i,dc=x"#);
        assert_eq!(d.first_value("cn"), Some(r#"a,b+c"d\e<f>g;h=i"#));
        assert_eq!(dn(r"cn=\ lead,dc=x").first_value("cn"), Some(" lead"));
        assert_eq!(dn(r"cn=trail\ ,dc=x").first_value("cn"), Some("trail "));
        assert_eq!(dn(r"cn=trail\  ,dc=x").first_value("cn"), Some("trail "));
        assert_eq!(dn(r"cn=\#hash,dc=x").first_value("cn"), Some("#hash"));
        assert_eq!(dn(r"cn=a\2Cb,dc=x").first_value("cn"), Some("a,b"));
        assert_eq!(dn(r"cn=a\2cb,dc=x"), dn(r"cn=a\,b,dc=x"));
        // UTF-8 as hex pairs: "Lučić" and a raw non-ASCII value.
        assert_eq!(dn(r"cn=Lu\C4\8Di\C4\87").first_value("cn"), Some("Lučić"));
        assert_eq!(dn("cn=Lučić"), dn(r"cn=lu\c4\8di\c4\87"));
        assert_eq!(dn("cn=a=b,dc=x").first_value("cn"), Some("a=b"));
        assert_eq!(dn(r#"cn="a, b",dc=x"#).first_value("cn"), Some("a, b"));
        assert_eq!(dn("cn=,dc=x").first_value("cn"), Some(""));
    }

    #[test]
    fn hex_ber_values_kept_literally() {
        let d = dn("uid=#04024869,dc=x");
        assert_eq!(d.first_value("uid"), Some("#04024869"));
        let again = dn(&d.to_string());
        assert_eq!(again.first_value("uid"), Some("#04024869"));
        assert_eq!(again, d);
    }

    #[test]
    fn oid_types_and_aliases_normalise_equal() {
        let a = dn("2.5.4.3=Alice,OU=Users,DC=Example,DC=COM");
        let b = dn("CN=alice,ou=users,dc=example,dc=com");
        let c = dn("commonName=  ALICE ,ou=users,domainComponent=example,dc=com");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.normalized(), "cn=alice,ou=users,dc=example,dc=com");
        assert_ne!(dn("uid=alice,dc=x"), dn("cn=alice,dc=x"));
        assert_eq!(dn("1.2.3.4=x").normalized(), "1.2.3.4=x");
        assert_eq!(a.first_value("commonName"), Some("Alice"));
        assert_eq!(a.first_value("CN"), Some("Alice"));
        assert_eq!(a.first_value("uid"), None);
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            dn("cn=  John    SMITH  ,dc=x").normalized(),
            "cn=john smith,dc=x"
        );
        assert_eq!(dn("cn=John Smith,dc=x"), dn("cn=john   smith,dc=x"));
        // AVAs of a multi-valued RDN are sorted.
        assert_eq!(dn("uid=b+cn=a,dc=x"), dn("CN=A + UID=B,dc=x"));
        assert_eq!(dn("uid=b+cn=a,dc=x").normalized(), "cn=a+uid=b,dc=x");
        // Specials are escaped, so these differ from each other.
        assert_eq!(dn(r"cn=a\,b,dc=x").normalized(), r"cn=a\2cb,dc=x");
        assert_ne!(dn(r"cn=a\,b,dc=x"), dn("cn=a,b=b,dc=x"));
        assert_ne!(dn(r"cn=a\+sn=b"), dn("cn=a+sn=b"));
        assert_eq!(dn(r"cn=\#x").normalized(), r"cn=\23x");
        use std::collections::HashSet;
        let set: HashSet<Dn> = [dn("CN=Alice,DC=x"), dn("cn=alice , dc=X")].into();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn display_escapes_and_round_trips() {
        let d = Dn::root()
            .child("dc", "com")
            .child("cn", r#" a,b+c"d\e<f>g;h "#);
        assert_eq!(d.to_string(), r#"cn=\ a\,b\+c\"d\\e\<f\>g\;h\ ,dc=com"#);
        assert_eq!(dn(&d.to_string()).first_value("cn"), d.first_value("cn"));
        let h = Dn::root().child("cn", "#x y");
        assert_eq!(h.to_string(), r"cn=\#x y");
        let nul = Dn::root().child("cn", "a\0b");
        assert_eq!(nul.to_string(), r"cn=a\00b");
        assert_eq!(dn(&nul.to_string()).first_value("cn"), Some("a\0b"));
        // Types stay as written.
        assert_eq!(
            dn("CN=Alice , 2.5.4.11=Users").to_string(),
            "CN=Alice,2.5.4.11=Users"
        );
        assert_eq!(dn("cn=a+sn=b,dc=x").to_string(), "cn=a+sn=b,dc=x");
        for s in [
            r"cn=Lu\C4\8Di\C4\87,dc=x",
            r"cn=\ \ x\ \ ,dc=y",
            r#"cn=\"q\",o=\3Ca\3E"#,
            "uid=x+cn=y+sn=z",
        ] {
            let once = dn(s);
            let twice = dn(&once.to_string());
            assert_eq!(avas(&once), avas(&twice), "{s}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "cn",
            "cn=a,",
            "cn=a,,dc=x",
            ",cn=a",
            "=a",
            "cn=a+",
            "cn=a\\",
            r"cn=a\zz",
            r"cn=a\4",
            r"cn=a\4g",
            r"cn=\C4",
            "cn=#",
            "cn=#123",
            "cn=#12zz",
            "cn=a<b",
            "cn=a\"b",
            "cn=\"unterminated",
            "1..2=x",
            "1.=x",
            "-cn=x",
            "c n=x",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should fail");
        }
        let long = format!("cn={}", "a".repeat(MAX_DN_LEN));
        assert!(Dn::parse(&long).is_err());
        let ok = format!("cn={}", "a".repeat(MAX_DN_LEN - 3));
        assert!(Dn::parse(&ok).is_ok());
    }

    #[test]
    fn tree_navigation() {
        let base = dn("dc=example,dc=com");
        let alice = base.child("ou", "users").child("cn", "alice");
        assert_eq!(alice, dn("cn=Alice,ou=Users,dc=Example,dc=com"));
        assert_eq!(alice.to_string(), "cn=alice,ou=users,dc=example,dc=com");
        assert!(alice.ends_with(&base));
        assert!(alice.ends_with(&alice));
        assert!(alice.ends_with(&Dn::root()));
        assert!(!base.ends_with(&alice));
        assert!(!dn("dc=myexample,dc=com").ends_with(&base));
        let tricky = dn(r"cn=x\,dc=example,dc=com");
        assert!(tricky.ends_with(&dn("dc=com")));
        assert!(!tricky.ends_with(&base));
        let p = alice.parent().unwrap();
        assert_eq!(p, dn("ou=users,dc=example,dc=com"));
        assert_eq!(p.normalized(), "ou=users,dc=example,dc=com");
        assert_eq!(dn("dc=com").parent().unwrap(), Dn::root());
        assert!(Dn::root().parent().is_none());
        assert_eq!(alice.relative_to(&base).map(<[Rdn]>::len), Some(2));
        assert!(base.relative_to(&alice).is_none());
        assert_eq!(dn("cn=a+sn=b,dc=x").first_value("cn"), None);
    }
}
