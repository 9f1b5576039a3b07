//! `pg_hba.conf`: parsing, first-match evaluation and rendering, following
//! PostgreSQL's own `hba.c` (`tokenize_auth_file`, `next_token`,
//! `parse_hba_line`):
//!
//! - a line ending in `\` continues on the next, which is appended with no
//!   blank in between; the backslash must be the very last character (a
//!   blank after it ends the line); continuing a comment continues the
//!   comment; at the end of the file the backslash is dropped;
//! - fields are separated by blanks; a field is a list of tokens separated
//!   by commas, and blanks after a comma keep the list going; `#` outside
//!   quotes starts a comment; a token is "quoted" (no longer a keyword)
//!   only when it starts with a double quote;
//! - `@file` reads names from a file, `+role` matches members of a role;
//!   neither can be decided offline, so a rule holding one matches
//!   "maybe";
//! - an address is `all`, `samehost`, `samenet`, an IP address with a CIDR
//!   length or a netmask in the next field (IPv4 as `inet_aton` reads it:
//!   `010.0.0.2` is 8.0.0.2), or a host name (never with a CIDR length);
//! - authentication methods are checked against the connection type as the
//!   server checks them (`cert` and `clientcert` only on `hostssl`, `peer`
//!   only on `local`, ...), and `include` lines exist from 16 on.

use crate::net::Cidr;
use crate::version::Major;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A token as `hba.c` sees it: quoting makes a keyword an ordinary name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
}

impl Token {
    pub fn is_keyword(&self, kw: &str) -> bool {
        !self.quoted && self.text == kw
    }

    /// `@file`: names read from a file (not followed offline).
    pub fn is_file_ref(&self) -> bool {
        !self.quoted && self.text.len() > 1 && self.text.starts_with('@')
    }

    /// `+role`: the members of a role (unknown offline).
    pub fn is_group(&self) -> bool {
        !self.quoted && self.text.len() > 1 && self.text.starts_with('+')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
    HostGssEnc,
    HostNoGssEnc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    All,
    SameHost,
    SameNet,
    Cidr(Cidr),
    Hostname(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::All => f.write_str("all"),
            Address::SameHost => f.write_str("samehost"),
            Address::SameNet => f.write_str("samenet"),
            Address::Cidr(c) => write!(f, "{c}"),
            Address::Hostname(h) => f.write_str(h),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    pub conn: ConnType,
    pub databases: Vec<Token>,
    pub users: Vec<Token>,
    /// `None` for `local` lines.
    pub address: Option<Address>,
    pub method: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaInclude {
    pub keyword: String,
    pub path: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HbaFile {
    pub rules: Vec<Rule>,
    pub includes: Vec<HbaInclude>,
    /// Lines the server refuses (it then refuses to start).
    pub errors: Vec<(usize, String)>,
    /// Lines it accepts that do not mean what they seem to.
    pub warnings: Vec<(usize, String)>,
}

/// Methods PostgreSQL knows; `bsd` and `sspi` exist only on BSD and
/// Windows builds (the containers run Linux).
const METHODS: &[&str] = &[
    "trust",
    "reject",
    "scram-sha-256",
    "md5",
    "password",
    "gss",
    "sspi",
    "ident",
    "peer",
    "ldap",
    "radius",
    "cert",
    "pam",
    "bsd",
];

/// `hba.c`'s `pg_isblank`.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r'
}

/// One field: its tokens (a comma-separated list).
type Field = Vec<Token>;

/// Splits a logical line into fields, as `next_field_expand` does.
fn tokenize(line: &str) -> Result<Vec<Field>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut fields: Vec<Field> = Vec::new();
    loop {
        let mut field: Field = Vec::new();
        loop {
            // Blanks and commas before a token are skipped.
            while i < chars.len() && (is_blank(chars[i]) || chars[i] == ',') {
                i += 1;
            }
            let mut text = String::new();
            let mut in_quote = false;
            let mut was_quote = false;
            let mut saw_quote = false;
            let mut initial_quote = false;
            let mut trailing_comma = false;
            while i < chars.len() && (!is_blank(chars[i]) || in_quote) {
                let c = chars[i];
                if c == '#' && !in_quote {
                    i = chars.len();
                    break;
                }
                if c == ',' && !in_quote {
                    trailing_comma = true;
                    i += 1;
                    break;
                }
                if c != '"' || was_quote {
                    text.push(c);
                }
                if in_quote && c == '"' {
                    was_quote = !was_quote;
                } else {
                    was_quote = false;
                }
                if c == '"' {
                    in_quote = !in_quote;
                    saw_quote = true;
                    if text.is_empty() {
                        initial_quote = true;
                    }
                }
                i += 1;
            }
            if in_quote {
                return Err("unterminated quoted string".into());
            }
            if !saw_quote && text.is_empty() {
                break;
            }
            field.push(Token {
                text,
                quoted: initial_quote,
            });
            if !trailing_comma {
                break;
            }
        }
        if field.is_empty() {
            return Ok(fields);
        }
        fields.push(field);
    }
}

fn single<'a>(field: &'a [Token], what: &str) -> Result<&'a Token, String> {
    match field {
        [t] => Ok(t),
        _ => Err(format!("{what} must be a single value, not a list")),
    }
}

/// Joins physical lines into logical ones, as `tokenize_auth_file` does:
/// each logical line with the number of its first physical line.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (idx, raw) in text.split('\n').enumerate() {
        // `pg_strip_crlf`: trailing CR and LF only, never blanks.
        let raw = raw.trim_end_matches(['\r', '\n']);
        let (first, mut buf) = pending.take().unwrap_or((idx + 1, String::new()));
        if let Some(cont) = raw.strip_suffix('\\') {
            buf.push_str(cont);
            pending = Some((first, buf));
            continue;
        }
        buf.push_str(raw);
        out.push((first, buf));
    }
    if let Some(last) = pending {
        out.push(last);
    }
    // `split` yields one empty piece after a final newline: not a line.
    if text.ends_with('\n') && out.last().is_some_and(|(_, l)| l.is_empty()) {
        out.pop();
    }
    out
}

/// Parses the text of a `pg_hba.conf` as PostgreSQL 15 reads it.
pub fn parse(text: &str) -> HbaFile {
    parse_for(text, Major::new(15).expect("a supported major"))
}

/// Parses the text of a `pg_hba.conf` as PostgreSQL `major` reads it.
pub fn parse_for(text: &str, major: Major) -> HbaFile {
    let mut out = HbaFile::default();
    for (line, logical) in logical_lines(text) {
        match parse_line(&logical, line, major, &mut out.warnings) {
            Ok(Some(Parsed::Rule(r))) => out.rules.push(r),
            Ok(Some(Parsed::Include(i))) => out.includes.push(i),
            Ok(None) => {}
            Err(e) => out.errors.push((line, e)),
        }
    }
    out
}

enum Parsed {
    Rule(Rule),
    Include(HbaInclude),
}

/// An IPv4 address as `inet_aton` (and so `getaddrinfo` with
/// `AI_NUMERICHOST`) reads it: one to four parts, each decimal, octal
/// (leading `0`) or hexadecimal (`0x`), the last filling the rest.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    if s.is_empty() || s.ends_with('.') {
        return None;
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::new();
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"))
        {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 8 {
            return None;
        }
        let v = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        nums.push(v);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&v| v > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if room < 64 && *last >= (1u64 << room) {
        return None;
    }
    let mut value: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        value |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((value | last) as u32))
}

/// An address as `getaddrinfo(AI_NUMERICHOST)` reads it.
fn numeric_host(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        // A zone (`fe80::1%eth0`) is not part of the address compared.
        let bare = s.split('%').next().unwrap_or(s);
        return bare.parse().ok();
    }
    inet_aton(s).map(IpAddr::V4)
}

fn parse_line(
    line: &str,
    lineno: usize,
    major: Major,
    warnings: &mut Vec<(usize, String)>,
) -> Result<Option<Parsed>, String> {
    let fields = tokenize(line)?;
    if fields.is_empty() {
        return Ok(None);
    }
    let conn = match parse_kind(&fields, lineno, major)? {
        Ok(conn) => conn,
        Err(include) => return Ok(Some(include)),
    };
    let kind = &fields[0][0];
    let need = if conn == ConnType::Local { 4 } else { 5 };
    if fields.len() < need - 1 {
        return Err(format!(
            "`{}` line needs at least {need} fields (type, database, user{}, method)",
            kind.text,
            if conn == ConnType::Local {
                ""
            } else {
                ", address"
            }
        ));
    }
    let databases = fields[1].clone();
    let users = fields.get(2).cloned().unwrap_or_default();
    if users.is_empty() {
        return Err("end-of-line before role specification".into());
    }
    for t in databases.iter().chain(&users) {
        if t.is_file_ref() {
            warnings.push((
                lineno,
                format!(
                    "`{}` reads names from a file, which is not checked here",
                    t.text
                ),
            ));
        }
    }
    let (address, next) = if conn == ConnType::Local {
        (None, 3)
    } else {
        let (a, next) = parse_address(&fields, lineno, warnings)?;
        (Some(a), next)
    };
    let method = parse_method(conn, fields.get(next))?;
    let options: Vec<String> = fields[next + 1..]
        .iter()
        .flat_map(|f| f.iter().map(|t| t.text.clone()))
        .collect();
    check_options(conn, &method, &options)?;
    Ok(Some(Parsed::Rule(Rule {
        line: lineno,
        conn,
        databases,
        users,
        address,
        method,
        options,
    })))
}

/// The line's first field: a connection type, or an include (16 on).
fn parse_kind(
    fields: &[Vec<Token>],
    lineno: usize,
    major: Major,
) -> Result<Result<ConnType, Parsed>, String> {
    let kind = single(&fields[0], "the connection type")?;
    Ok(Ok(match kind.text.as_str() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        "hostgssenc" => ConnType::HostGssEnc,
        "hostnogssenc" => ConnType::HostNoGssEnc,
        kw @ ("include" | "include_if_exists" | "include_dir") if major.hba_includes() => {
            let path = fields
                .get(1)
                .and_then(|f| f.first())
                .ok_or_else(|| format!("`{kw}` needs a file name"))?;
            return Ok(Err(Parsed::Include(HbaInclude {
                keyword: kw.to_string(),
                path: path.text.clone(),
                line: lineno,
            })));
        }
        kw @ ("include" | "include_if_exists" | "include_dir") => {
            return Err(format!(
                "invalid connection type `{kw}`: PostgreSQL {major} has no `{kw}` in pg_hba.conf (it came in 16); the server refuses to start"
            ))
        }
        other => {
            return Err(format!(
                "invalid connection type `{}`",
                crate::names::shown(other)
            ))
        }
    }))
}

/// The address field (and the netmask field after a bare address):
/// returns it and the index of the method's field.
fn parse_address(
    fields: &[Vec<Token>],
    lineno: usize,
    warnings: &mut Vec<(usize, String)>,
) -> Result<(Address, usize), String> {
    let tok = single(
        fields
            .get(3)
            .ok_or("end-of-line before IP address specification")?,
        "the address",
    )?;
    let mut next = 4;
    let text = tok.text.as_str();
    let addr = if tok.is_keyword("all") {
        Address::All
    } else if tok.is_keyword("samehost") {
        Address::SameHost
    } else if tok.is_keyword("samenet") {
        Address::SameNet
    } else {
        let (host, cidr) = match text.split_once('/') {
            Some((h, c)) => (h, Some(c)),
            None => (text, None),
        };
        match (numeric_host(host), cidr) {
            (Some(ip), Some(len)) => {
                let prefix: u8 = len.parse().map_err(|_| {
                    format!(
                        "invalid CIDR mask in address `{}`",
                        crate::names::shown(text)
                    )
                })?;
                note_octal(host, ip, lineno, warnings);
                Address::Cidr(Cidr::new(ip, prefix).map_err(|e| {
                    format!(
                        "invalid CIDR mask in address `{}`: {e}",
                        crate::names::shown(text)
                    )
                })?)
            }
            (Some(ip), None) => {
                let mask_tok = fields
                    .get(4)
                    .map(|f| single(f, "the netmask"))
                    .transpose()?
                    .ok_or_else(|| {
                        format!("end-of-line before netmask specification: address `{ip}` needs a CIDR length or a netmask")
                    })?;
                let mask = numeric_host(&mask_tok.text).ok_or_else(|| {
                    format!("invalid IP mask `{}`", crate::names::shown(&mask_tok.text))
                })?;
                next = 5;
                note_octal(host, ip, lineno, warnings);
                Address::Cidr(Cidr::from_mask(ip, mask).map_err(|e| e.to_string())?)
            }
            (None, Some(_)) => {
                return Err(format!(
                    "specifying both host name and CIDR mask is invalid: `{}`",
                    crate::names::shown(text)
                ))
            }
            (None, None) => {
                if text.contains(':') {
                    return Err(format!(
                        "invalid IP address `{}`",
                        crate::names::shown(text)
                    ));
                }
                warnings.push((
                    lineno,
                    format!(
                        "`{}` is a host name: the server looks up every client's address in reverse DNS and then forward again; \
                         in Docker a container's address resolves to `<container>.<network>`, so the line rarely matches. Use the network's CIDR",
                        crate::names::shown(text)
                    ),
                ));
                Address::Hostname(text.to_string())
            }
        }
    };
    Ok((addr, next))
}

/// The method field, checked against the connection type as hba.c does
/// (`ident` on a local socket is `peer`).
fn parse_method(conn: ConnType, field: Option<&Vec<Token>>) -> Result<String, String> {
    let method_tok = field
        .map(|f| single(f, "the method"))
        .transpose()?
        .ok_or("end-of-line before authentication method")?;
    let method = method_tok.text.as_str();
    if !METHODS.contains(&method) {
        return Err(format!(
            "invalid authentication method `{}`",
            crate::names::shown(method)
        ));
    }
    if matches!(method, "bsd" | "sspi") {
        return Err(format!(
            "invalid authentication method `{method}`: not supported by this build (it exists on BSD or Windows builds only)"
        ));
    }
    let mut method = method.to_string();
    // hba.c: `ident` on a local socket is `peer`.
    if conn == ConnType::Local && method == "ident" {
        method = "peer".into();
    }
    if conn == ConnType::Local && method == "gss" {
        return Err("gssapi authentication is not supported on local sockets".into());
    }
    if conn != ConnType::Local && method == "peer" {
        return Err("peer authentication is only supported on local sockets".into());
    }
    if conn != ConnType::HostSsl && method == "cert" {
        return Err("cert authentication is only supported on hostssl connections".into());
    }
    if conn == ConnType::HostGssEnc && !matches!(method.as_str(), "gss" | "trust" | "reject") {
        return Err("GSSAPI encryption only supports gss, trust, or reject authentication".into());
    }
    Ok(method)
}

/// Each option is `name=value`; `clientcert` only on hostssl, with the
/// values and method hba.c allows.
fn check_options(conn: ConnType, method: &str, options: &[String]) -> Result<(), String> {
    for o in options {
        let Some((key, value)) = o.split_once('=') else {
            return Err(format!(
                "authentication option not in name=value format: `{}`",
                crate::names::shown(o)
            ));
        };
        if key == "clientcert" {
            if conn != ConnType::HostSsl {
                return Err("clientcert can only be configured for \"hostssl\" rows".into());
            }
            if !matches!(value, "verify-full" | "verify-ca") {
                return Err(format!(
                    "invalid value for clientcert: `{}`",
                    crate::names::shown(value)
                ));
            }
            if method == "cert" && value != "verify-full" {
                return Err(
                    "clientcert only accepts \"verify-full\" when using \"cert\" authentication"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

/// Warns when PostgreSQL reads an address differently from how it looks.
fn note_octal(text: &str, ip: IpAddr, line: usize, warnings: &mut Vec<(usize, String)>) {
    if text.parse::<IpAddr>().ok() != Some(ip) {
        warnings.push((
            line,
            format!(
                "PostgreSQL reads the address `{}` as {ip} (a part with a leading 0 is octal, and fewer than four parts fill the rest); write {ip}",
                crate::names::shown(text)
            ),
        ));
    }
}

/// A connection attempt to evaluate against the rules.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// `None` for a Unix-socket connection.
    pub from: Option<IpAddr>,
    pub database: &'a str,
    pub replication: bool,
    pub user: &'a str,
    /// The server's own network, when known: `samenet` matches a client in
    /// it, `samehost` only the server's own addresses (never another
    /// container's).
    pub server_net: Option<Cidr>,
}

/// Whether a rule matches an attempt: what can be decided offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    /// Depends on what cannot be known offline (role membership, a file of
    /// names, DNS).
    Maybe,
}

impl Match {
    fn and(self, other: Match) -> Match {
        match (self, other) {
            (Match::No, _) | (_, Match::No) => Match::No,
            (Match::Yes, Match::Yes) => Match::Yes,
            _ => Match::Maybe,
        }
    }

    fn any(items: impl Iterator<Item = Match>) -> Match {
        let mut best = Match::No;
        for m in items {
            match m {
                Match::Yes => return Match::Yes,
                Match::Maybe => best = Match::Maybe,
                Match::No => {}
            }
        }
        best
    }
}

impl Rule {
    fn database_match(&self, a: &Attempt) -> Match {
        Match::any(self.databases.iter().map(|t| {
            if t.is_file_ref() {
                return Match::Maybe;
            }
            let yes = if a.replication {
                // Physical replication matches only the `replication`
                // keyword: `all` does not cover it.
                t.is_keyword("replication")
            } else {
                t.is_keyword("all")
                    || (t.is_keyword("sameuser") && a.database == a.user)
                    || (!t.is_keyword("replication") && t.text == a.database)
            };
            if yes {
                Match::Yes
            } else if !a.replication && (t.is_keyword("samerole") || t.is_keyword("samegroup")) {
                Match::Maybe
            } else {
                Match::No
            }
        }))
    }

    fn user_match(&self, a: &Attempt) -> Match {
        Match::any(self.users.iter().map(|t| {
            if t.is_keyword("all") || (!t.is_group() && !t.is_file_ref() && t.text == a.user) {
                Match::Yes
            } else if t.is_group() || t.is_file_ref() {
                Match::Maybe
            } else {
                Match::No
            }
        }))
    }

    /// Whether this rule would be the one chosen for `a`, were it the first.
    pub fn matching(&self, a: &Attempt) -> Match {
        let conn = match (self.conn, a.from) {
            (ConnType::Local, None) => Match::Yes,
            (ConnType::Local, Some(_)) | (_, None) => Match::No,
            (ConnType::Host | ConnType::HostNoSsl | ConnType::HostNoGssEnc, Some(_)) => Match::Yes,
            // Containers on one network talk without SSL/GSS unless configured.
            (ConnType::HostSsl | ConnType::HostGssEnc, Some(_)) => Match::No,
        };
        let addr = match (&self.address, a.from) {
            (None, _) | (Some(Address::All), _) => Match::Yes,
            (Some(Address::Cidr(c)), Some(ip)) => {
                if c.contains(ip) {
                    Match::Yes
                } else {
                    Match::No
                }
            }
            (Some(Address::SameNet), Some(ip)) => match a.server_net {
                Some(net) if net.contains(ip) => Match::Yes,
                Some(_) => Match::No,
                None => Match::Maybe,
            },
            // A client on another container is never the server's own host.
            (Some(Address::SameHost), Some(ip)) => {
                if ip.is_loopback() {
                    Match::Yes
                } else {
                    Match::No
                }
            }
            (Some(Address::Hostname(_)), Some(_)) => Match::Maybe,
            (Some(_), None) => Match::No,
        };
        conn.and(addr)
            .and(self.database_match(a))
            .and(self.user_match(a))
    }

    /// `trust` (or `password`, sending it in clear) reachable from beyond the
    /// machine's own loopback.
    pub fn is_remote(&self) -> bool {
        match &self.address {
            None => false,
            Some(Address::Cidr(c)) => !c.is_loopback(),
            Some(Address::SameHost) => false,
            Some(_) => true,
        }
    }

    /// The rule as one `pg_hba.conf` line.
    pub fn render(&self) -> String {
        let list = |ts: &[Token]| {
            ts.iter()
                .map(Token::render_token)
                .collect::<Vec<_>>()
                .join(",")
        };
        let conn = match self.conn {
            ConnType::Local => "local",
            ConnType::Host => "host",
            ConnType::HostSsl => "hostssl",
            ConnType::HostNoSsl => "hostnossl",
            ConnType::HostGssEnc => "hostgssenc",
            ConnType::HostNoGssEnc => "hostnogssenc",
        };
        let addr = self
            .address
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Columns are padded for reading, and always separated by a blank
        // however long a value is.
        let mut s = String::new();
        for (text, width) in [
            (conn.to_string(), 8),
            (list(&self.databases), 16),
            (list(&self.users), 16),
            (addr, 20),
        ] {
            s.push_str(&format!("{text:<w$} ", w = width - 1));
        }
        s.push_str(&self.method);
        for o in &self.options {
            s.push(' ');
            s.push_str(o);
        }
        s.trim_end().to_string()
    }
}

impl HbaFile {
    /// The first rule that may match, as PostgreSQL picks it, with how sure
    /// that is: a `Maybe` rule ahead of a sure one makes the outcome
    /// uncertain.
    pub fn first_match(&self, a: &Attempt) -> Option<(&Rule, Match)> {
        self.rules.iter().find_map(|r| match r.matching(a) {
            Match::No => None,
            m => Some((r, m)),
        })
    }
}

impl Token {
    /// The token as pg_hba.conf spells it, quoted when it must be.
    pub fn render_token(&self) -> String {
        if self.quoted || needs_quotes(&self.text) {
            format!("\"{}\"", self.text.replace('"', "\"\""))
        } else {
            self.text.clone()
        }
    }
}

/// Whether a token's text must be quoted to stay one token.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.ends_with('\\')
        || text.contains(|c: char| {
            is_blank(c) || c.is_whitespace() || c == ',' || c == '#' || c == '"'
        })
}

/// Makes a token that is a keyword when it spells one.
pub fn word(text: &str) -> Token {
    Token {
        text: text.to_string(),
        quoted: false,
    }
}

/// Makes a token for a role or database name, quoted when a bare spelling
/// would read as a keyword, a group, a file or split.
pub fn name(text: &str) -> Token {
    let special = matches!(
        text,
        "all" | "sameuser" | "samerole" | "samegroup" | "replication"
    ) || text.starts_with(['+', '@', '/'])
        || needs_quotes(text);
    Token {
        text: text.to_string(),
        quoted: special,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "# TYPE DATABASE USER ADDRESS METHOD\n\
        local   all             all                                     trust\n\
        host    all             all             127.0.0.1/32            trust\n\
        host    replication     replicator      172.21.0.0/16           trust\n\
        host    all             all             all                     scram-sha-256\n";

    fn repl<'a>(from: &str, user: &'a str) -> Attempt<'a> {
        Attempt {
            from: Some(from.parse().unwrap()),
            database: "replication",
            replication: true,
            user,
            server_net: Some("172.21.0.0/16".parse().unwrap()),
        }
    }

    #[test]
    fn parses_runbook_lines() {
        let f = parse(RUNBOOK);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.rules.len(), 4);
        assert_eq!(f.rules[2].line, 4);
        assert_eq!(
            f.rules[2].address,
            Some(Address::Cidr("172.21.0.0/16".parse().unwrap()))
        );
        let a = repl("172.21.0.3", "replicator");
        assert_eq!(f.first_match(&a).unwrap().0.line, 4);
        // `all` in the database column does not match replication.
        assert!(f.first_match(&repl("172.21.0.3", "repluser")).is_none());
    }

    #[test]
    fn netmask_keywords_quotes_and_lists() {
        let f = parse(
            "host replication,\"all\" +admins,\"replication\" 192.168.192.0 255.255.240.0 md5\n\
             host all all samenet scram-sha-256\n\
             local all all\n\
             hostx all all all trust\n\
             include_dir conf.d\n",
        );
        assert_eq!(f.rules.len(), 2);
        assert_eq!(
            f.rules[0].address,
            Some(Address::Cidr("192.168.192.0/20".parse().unwrap()))
        );
        assert!(f.rules[0].databases[0].is_keyword("replication"));
        assert!(!f.rules[0].databases[1].is_keyword("all"));
        assert!(f.rules[0].users[0].is_group());
        assert_eq!(f.errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(f.errors[2].1.contains("16"), "{:?}", f.errors);
        let sixteen = parse_for("include_dir conf.d\n", Major::new(16).unwrap());
        assert_eq!(sixteen.includes[0].path, "conf.d");
        assert!(sixteen.errors.is_empty());
    }

    #[test]
    fn continuation_lines_as_hba_c_joins_them() {
        // No blank is added: `repl\` + `user` is one token.
        let f = parse("host replication repl\\\nuser 10.0.0.0/8 md5\n");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.rules[0].users[0].text, "repluser");
        assert_eq!(f.rules[0].line, 1);
        // Inside a list: blanks after a comma keep the list going.
        let f = parse("host replication,\\\n  all a,  b 10.0.0.0/8 md5\n");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.rules[0].databases.len(), 2);
        assert_eq!(
            f.rules[0]
                .users
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        // After a comment: the next line is part of the comment.
        let f = parse("# a comment \\\nhost all all all trust\nlocal all all peer\n");
        assert_eq!(f.rules.len(), 1);
        assert_eq!(f.rules[0].conn, ConnType::Local);
        assert_eq!(f.rules[0].line, 3);
        // A blank after the backslash: no continuation.
        let f = parse("host all all 10.0.0.0/8 md5 \\ \nlocal all all peer\n");
        assert_eq!(f.rules.len(), 1, "{:?}", f);
        assert!(
            !f.errors.is_empty(),
            "a lone backslash is an option without ="
        );
        // At the end of the file the backslash is dropped.
        let f = parse("local all all peer\\");
        assert_eq!(f.rules.len(), 1);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        // CRLF line ends.
        let f = parse("host replication r\\\r\nx 10.0.0.0/8 md5\r\n");
        assert_eq!(f.rules[0].users[0].text, "rx");
    }

    #[test]
    fn samehost_is_not_samenet() {
        let f = parse("host replication replicator samehost scram-sha-256\n");
        assert!(f.first_match(&repl("172.21.0.3", "replicator")).is_none());
        let f = parse("host replication replicator samenet scram-sha-256\n");
        assert_eq!(
            f.first_match(&repl("172.21.0.3", "replicator")).unwrap().1,
            Match::Yes
        );
        let mut unknown_net = repl("172.21.0.3", "replicator");
        unknown_net.server_net = None;
        assert_eq!(f.first_match(&unknown_net).unwrap().1, Match::Maybe);
    }

    #[test]
    fn groups_files_and_host_names_match_maybe() {
        let f = parse(
            "host replication +replicators 172.21.0.0/16 scram-sha-256\n\
                       host replication @users.txt 172.21.0.0/16 scram-sha-256\n\
                       host replication replicator db.example/24 scram-sha-256\n",
        );
        assert!(
            f.errors
                .iter()
                .any(|(l, e)| *l == 3 && e.contains("host name and CIDR")),
            "{:?}",
            f.errors
        );
        assert_eq!(
            f.first_match(&repl("172.21.0.3", "replicator")).unwrap().1,
            Match::Maybe
        );
        assert!(f
            .warnings
            .iter()
            .any(|(l, w)| *l == 2 && w.contains("file")));
        let f = parse("host replication replicator db.example scram-sha-256\n");
        assert!(f.warnings.iter().any(|(_, w)| w.contains("host name")));
        assert_eq!(
            f.first_match(&repl("172.21.0.3", "replicator")).unwrap().1,
            Match::Maybe
        );
    }

    #[test]
    fn methods_that_need_a_connection_type() {
        let e = |line: &str| {
            parse(line)
                .errors
                .first()
                .map(|e| e.1.clone())
                .unwrap_or_default()
        };
        assert!(e("host all all 10.0.0.0/8 cert\n").contains("hostssl"));
        assert!(e("hostssl all all 10.0.0.0/8 cert\n").is_empty());
        assert!(e("host all all 10.0.0.0/8 md5 clientcert=verify-full\n").contains("hostssl"));
        assert!(e("hostssl all all 10.0.0.0/8 cert clientcert=verify-ca\n").contains("verify-full"));
        assert!(e("host all all 10.0.0.0/8 peer\n").contains("local"));
        assert!(e("local all all gss\n").contains("local"));
        assert!(e("hostgssenc all all 10.0.0.0/8 md5\n").contains("GSSAPI"));
        assert!(e("host all all 10.0.0.0/8 sspi\n").contains("not supported"));
        assert!(e("host all all 10.0.0.0/8 md5 foo\n").contains("name=value"));
        assert_eq!(parse("local all all ident\n").rules[0].method, "peer");
    }

    #[test]
    fn addresses_as_inet_aton_reads_them() {
        assert_eq!(inet_aton("010.0.0.2"), Some(Ipv4Addr::new(8, 0, 0, 2)));
        assert_eq!(inet_aton("10.2"), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(inet_aton("0x0a.1.2.3"), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(inet_aton("167772162"), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(inet_aton("999.999.999.999"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("09.1.1.1"), None, "9 is no octal digit");
        let f = parse("host replication r 010.0.0.0/8 md5\n");
        assert_eq!(
            f.rules[0].address,
            Some(Address::Cidr("8.0.0.0/8".parse().unwrap()))
        );
        assert!(
            f.warnings.iter().any(|(_, w)| w.contains("octal")),
            "{:?}",
            f.warnings
        );
        assert!(parse("host all all 999.1.1.1/8 md5\n")
            .errors
            .iter()
            .any(|(_, e)| e.contains("host name")));
    }

    #[test]
    fn remote_and_render() {
        let f = parse("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nhost all all 10.0.0.0/8 trust\n");
        assert_eq!(
            f.rules.iter().map(Rule::is_remote).collect::<Vec<_>>(),
            [false, false, true]
        );
        let again = parse(
            &f.rules
                .iter()
                .map(Rule::render)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert_eq!(again.rules.len(), 3);
        assert_eq!(again.rules[2].address, f.rules[2].address);
        assert!(name("replication").quoted);
        assert!(!name("repluser").quoted);
        assert!(
            name("a\\").quoted,
            "a trailing backslash would continue the line"
        );
    }
}
