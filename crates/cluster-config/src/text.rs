//! Turning a file's bytes into text the parsers read: a leading UTF-8 BOM is
//! removed (files saved by Windows editors have one; the runbooks' did), CRLF
//! line ends are read like LF by every parser, and input that is not UTF-8
//! or holds a NUL byte is refused with the file and line.

use crate::diag::{Diagnostic, Location, Severity};

/// A file's text, ready for a parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text without its BOM.
    pub text: String,
    /// Whether the file started with a UTF-8 BOM.
    pub had_bom: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn problem(code: &'static str, path: &str, line: Option<usize>, message: String) -> Diagnostic {
    let mut location = Location::file(path);
    location.line = line;
    Diagnostic {
        severity: Severity::Error,
        code,
        location,
        message,
    }
}

/// Decodes a file's bytes. `path` is only used in the error.
pub fn decode(path: &str, bytes: &[u8]) -> Result<Decoded, Diagnostic> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(problem(
            "encoding",
            path,
            Some(1),
            "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8".into(),
        ));
    }
    let (body, had_bom) = match bytes.strip_prefix(BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to() + if had_bom { BOM.len() } else { 0 };
            return Err(problem(
                "encoding",
                path,
                Some(line_at(bytes, at)),
                format!(
                    "the file is not UTF-8 (byte 0x{:02X} at offset {at}); save it as UTF-8 (a Windows code page such as 1251 is not read)",
                    bytes[at]
                ),
            ));
        }
    };
    if let Some(at) = text.find('\0') {
        let at = at + if had_bom { BOM.len() } else { 0 };
        return Err(problem(
            "nul-byte",
            path,
            Some(line_at(bytes, at)),
            "the file holds a NUL byte: it is binary or corrupt, and PostgreSQL stops reading a line there".into(),
        ));
    }
    Ok(Decoded {
        text: text.to_string(),
        had_bom,
    })
}

/// A file's text for showing or searching whatever its encoding (UTF-8,
/// UTF-16 with a byte order mark, or anything else read lossily); never for
/// parsing.
pub fn lossy(bytes: &[u8]) -> String {
    let utf16 = |le: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if bytes.starts_with(b"\xFF\xFE") {
        utf16(true)
    } else if bytes.starts_with(b"\xFE\xFF") {
        utf16(false)
    } else {
        String::from_utf8_lossy(bytes.strip_prefix(BOM).unwrap_or(bytes)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_reads_every_encoding() {
        assert_eq!(lossy(b"\xFF\xFEa\x00b\x00"), "ab");
        assert_eq!(lossy(b"\xEF\xBB\xBFab"), "ab");
        assert_eq!(lossy(b"a\xFFb"), "a\u{fffd}b");
    }

    #[test]
    fn bom_and_crlf() {
        let d = decode("f", b"\xEF\xBB\xBFwal_level = minimal\r\nx = 1\r\n").unwrap();
        assert!(d.had_bom);
        assert_eq!(d.text.lines().next(), Some("wal_level = minimal"));
    }

    #[test]
    fn refusals_name_the_line() {
        let e = decode("f.conf", b"a = 1\nb = '\xC0\xC1'\n").unwrap_err();
        assert_eq!((e.code, e.location.line), ("encoding", Some(2)));
        let e = decode("f.conf", b"\xEF\xBB\xBFa = 1\n\nb\0\n").unwrap_err();
        assert_eq!((e.code, e.location.line), ("nul-byte", Some(3)));
        let e = decode("f.conf", b"\xFF\xFEa\0").unwrap_err();
        assert_eq!(e.code, "encoding");
        assert!(e.to_string().contains("f.conf:1"), "{e}");
    }
}
