//! `pg_hba.conf`: parsing, first-match evaluation and rendering.

use crate::net::Cidr;
use std::fmt;
use std::net::IpAddr;

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
    pub errors: Vec<(usize, String)>,
}

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

fn tokenize(line: &str) -> Result<Vec<Vec<Token>>, String> {
    // A field is a comma-separated list of tokens; fields are separated by blanks.
    let mut fields: Vec<Vec<Token>> = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '#' {
            break;
        }
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut field = Vec::new();
        loop {
            let mut text = String::new();
            let mut quoted = false;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' && chars[i] != '#'
            {
                if chars[i] == '"' {
                    quoted = true;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err("unterminated quoted string".into()),
                            Some('"') if chars.get(i + 1) == Some(&'"') => {
                                text.push('"');
                                i += 2;
                            }
                            Some('"') => {
                                i += 1;
                                break;
                            }
                            Some(c) => {
                                text.push(*c);
                                i += 1;
                            }
                        }
                    }
                } else {
                    text.push(chars[i]);
                    i += 1;
                }
            }
            field.push(Token { text, quoted });
            if chars.get(i) == Some(&',') {
                i += 1;
                continue;
            }
            break;
        }
        fields.push(field);
    }
    Ok(fields)
}

fn single<'a>(field: &'a [Token], what: &str) -> Result<&'a Token, String> {
    match field {
        [t] => Ok(t),
        _ => Err(format!("{what} must be a single value, not a list")),
    }
}

/// Parses the text of a `pg_hba.conf`; lines ending in `\` continue on the next.
pub fn parse(text: &str) -> HbaFile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = HbaFile::default();
    let mut pending = String::new();
    let mut first_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            first_line = idx + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        match parse_line(&line, first_line) {
            Ok(Some(Parsed::Rule(r))) => out.rules.push(r),
            Ok(Some(Parsed::Include(i))) => out.includes.push(i),
            Ok(None) => {}
            Err(e) => out.errors.push((first_line, e)),
        }
    }
    out
}

enum Parsed {
    Rule(Rule),
    Include(HbaInclude),
}

fn parse_line(line: &str, lineno: usize) -> Result<Option<Parsed>, String> {
    let fields = tokenize(line)?;
    let Some(first) = fields.first() else {
        return Ok(None);
    };
    let kind = single(first, "the connection type")?;
    let conn = match kind.text.as_str() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        "hostgssenc" => ConnType::HostGssEnc,
        "hostnogssenc" => ConnType::HostNoGssEnc,
        kw @ ("include" | "include_if_exists" | "include_dir") => {
            let path = fields
                .get(1)
                .and_then(|f| f.first())
                .ok_or_else(|| format!("`{kw}` needs a file name"))?;
            return Ok(Some(Parsed::Include(HbaInclude {
                keyword: kw.to_string(),
                path: path.text.clone(),
                line: lineno,
            })));
        }
        other => return Err(format!("invalid connection type `{other}`")),
    };
    let need = if conn == ConnType::Local { 4 } else { 5 };
    if fields.len() < need {
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
    let users = fields[2].clone();
    let mut next = 3;
    let address = if conn == ConnType::Local {
        None
    } else {
        let tok = single(&fields[3], "the address")?;
        next = 4;
        let addr = if tok.is_keyword("all") {
            Address::All
        } else if tok.is_keyword("samehost") {
            Address::SameHost
        } else if tok.is_keyword("samenet") {
            Address::SameNet
        } else if tok.text.contains('/') {
            Address::Cidr(tok.text.parse()?)
        } else if let Ok(ip) = tok.text.parse::<IpAddr>() {
            // Address followed by a netmask in the next field.
            let mask_tok = fields
                .get(4)
                .map(|f| single(f, "the netmask"))
                .transpose()?
                .ok_or_else(|| format!("address `{ip}` needs a CIDR length or a netmask"))?;
            let mask: IpAddr = mask_tok
                .text
                .parse()
                .map_err(|_| format!("`{}` is not a netmask", mask_tok.text))?;
            next = 5;
            Address::Cidr(Cidr::from_mask(ip, mask)?)
        } else {
            Address::Hostname(tok.text.clone())
        };
        Some(addr)
    };
    let method_tok = fields
        .get(next)
        .map(|f| single(f, "the method"))
        .transpose()?
        .ok_or("missing authentication method")?;
    if !METHODS.contains(&method_tok.text.as_str()) {
        return Err(format!(
            "invalid authentication method `{}`",
            method_tok.text
        ));
    }
    let options = fields[next + 1..]
        .iter()
        .flat_map(|f| f.iter().map(|t| t.text.clone()))
        .collect();
    Ok(Some(Parsed::Rule(Rule {
        line: lineno,
        conn,
        databases,
        users,
        address,
        method: method_tok.text.clone(),
        options,
    })))
}

/// A connection attempt to evaluate against the rules.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// `None` for a Unix-socket connection.
    pub from: Option<IpAddr>,
    pub database: &'a str,
    pub replication: bool,
    pub user: &'a str,
}

impl Rule {
    fn database_matches(&self, a: &Attempt) -> bool {
        self.databases.iter().any(|t| {
            if a.replication {
                // Physical replication matches only the `replication` keyword:
                // `all` does not cover it.
                t.is_keyword("replication")
            } else {
                t.is_keyword("all")
                    || (t.is_keyword("sameuser") && a.database == a.user)
                    || (!t.is_keyword("replication") && t.text == a.database)
            }
        })
    }

    fn user_matches(&self, a: &Attempt) -> bool {
        self.users
            .iter()
            .any(|t| t.is_keyword("all") || t.text == a.user)
    }

    /// Whether this rule would be the one chosen for `a`, were it the first.
    /// `samehost` / `samenet` / host names cannot be decided offline and are
    /// taken to match only when `assume_local_nets` is set.
    pub fn matches(&self, a: &Attempt, assume_local_nets: bool) -> bool {
        let conn_ok = match (self.conn, a.from) {
            (ConnType::Local, None) => true,
            (ConnType::Local, Some(_)) | (_, None) => false,
            (ConnType::Host | ConnType::HostNoSsl | ConnType::HostNoGssEnc, Some(_)) => true,
            // Containers on one network talk without SSL/GSS unless configured.
            (ConnType::HostSsl | ConnType::HostGssEnc, Some(_)) => false,
        };
        let addr_ok = match (&self.address, a.from) {
            (None, _) => true,
            (Some(Address::All), _) => true,
            (Some(Address::Cidr(c)), Some(ip)) => c.contains(ip),
            (Some(Address::SameNet | Address::SameHost | Address::Hostname(_)), _) => {
                assume_local_nets
            }
            (Some(_), None) => false,
        };
        conn_ok && addr_ok && self.database_matches(a) && self.user_matches(a)
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
                .map(|t| {
                    if t.quoted || needs_quotes(&t.text) {
                        format!("\"{}\"", t.text.replace('"', "\"\""))
                    } else {
                        t.text.clone()
                    }
                })
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
    /// The first rule that matches, as PostgreSQL picks it.
    pub fn first_match(&self, a: &Attempt, assume_local_nets: bool) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(a, assume_local_nets))
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
        || text.contains(|c: char| c.is_whitespace() || c == ',' || c == '#' || c == '"')
}

/// Makes a token that is a keyword when it spells one.
pub fn word(text: &str) -> Token {
    Token {
        text: text.to_string(),
        quoted: false,
    }
}

/// Makes a token for a role or database name, quoted when a bare spelling
/// would read as a keyword or split.
pub fn name(text: &str) -> Token {
    let special = matches!(
        text,
        "all" | "sameuser" | "samerole" | "samegroup" | "replication"
    ) || text.starts_with(['+', '@', '/'])
        || text.contains([',', ' ', '"', '#']);
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
        let a = Attempt {
            from: Some("172.21.0.3".parse().unwrap()),
            database: "replication",
            replication: true,
            user: "replicator",
        };
        assert_eq!(f.first_match(&a, false).unwrap().line, 4);
        // `all` in the database column does not match replication.
        let other_user = Attempt {
            user: "repluser",
            ..a
        };
        assert!(f.first_match(&other_user, false).is_none());
    }

    #[test]
    fn netmask_keywords_quotes_and_lists() {
        let f = parse(
            "host replication,\"all\" +admins,\"replication\" 192.168.192.0 255.255.240.0 md5\n\
             host all all samenet scram-sha-256 clientcert=verify-full\n\
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
        assert_eq!(f.rules[1].options, ["clientcert=verify-full"]);
        assert_eq!(f.errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(f.includes[0].path, "conf.d");
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
    }
}
