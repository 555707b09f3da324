//! Just enough HTTP/1.1 response framing (RFC 9112 §6.3) to know when the upstream has
//! finished one answer, so the lost-acknowledgement fault can swallow exactly the whole
//! answer. Anything it does not understand falls back to "until the upstream closes",
//! which is always safe: the upstream has then certainly finished.

/// How far a buffered response has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseEnd {
    /// More bytes are needed.
    Incomplete,
    /// The buffer holds at least one whole final response.
    Complete,
    /// The end cannot be told from the bytes (no framing, an upgrade, or not HTTP at all):
    /// the answer ends when the upstream closes.
    UntilClose,
}

/// Longest response head (status line and headers) we wait for before giving up on parsing.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line (with extensions) we accept.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Where the response that starts at `buf[0]` ends. `head_request` says the request was a
/// `HEAD`, whose response has headers but never a body. Interim `1xx` responses are skipped:
/// the answer is the final response after them.
pub(crate) fn response_end(buf: &[u8], head_request: bool) -> ResponseEnd {
    let mut start = 0;
    loop {
        let rest = buf.get(start..).unwrap_or_default();
        if rest.len() < 5 {
            return if b"HTTP/".starts_with(rest) {
                ResponseEnd::Incomplete
            } else {
                ResponseEnd::UntilClose
            };
        }
        if !rest.starts_with(b"HTTP/") {
            return ResponseEnd::UntilClose;
        }
        let Some(head_len) = find(rest, b"\r\n\r\n").map(|i| i + 4) else {
            return if rest.len() > MAX_HEAD {
                ResponseEnd::UntilClose
            } else {
                ResponseEnd::Incomplete
            };
        };
        let Some(head) = parse_head(&rest[..head_len]) else {
            return ResponseEnd::UntilClose;
        };
        let body_start = start + head_len;
        match head.status {
            // Switching protocols: what follows is no longer HTTP.
            101 => return ResponseEnd::UntilClose,
            // Interim (100 Continue, 103 Early Hints): the final response follows.
            100..=199 => {
                start = body_start;
                continue;
            }
            204 | 304 => return ResponseEnd::Complete,
            _ if head_request => return ResponseEnd::Complete,
            _ => {}
        }
        let body = buf.get(body_start..).unwrap_or_default();
        return match head.framing {
            Framing::Chunked => chunked_end(body),
            Framing::Length(len) => {
                if body.len() as u64 >= len {
                    ResponseEnd::Complete
                } else {
                    ResponseEnd::Incomplete
                }
            }
            Framing::UntilClose => ResponseEnd::UntilClose,
        };
    }
}

/// How a response body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
}

/// Parses a response head (status line and headers, ending in the blank line). `None` when
/// it is malformed, so the caller falls back to "until close".
fn parse_head(head: &[u8]) -> Option<Head> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next()?;
    // "HTTP/1.1 200 OK": the code is the three digits after the first space.
    let after_version = status_line.splitn(2, |&b| b == b' ').nth(1)?;
    let code = after_version.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = std::str::from_utf8(code).ok()?.parse().ok()?;

    let mut chunked = false;
    let mut other_coding = false;
    let mut length: Option<u64> = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line[..colon].trim_ascii();
        let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok()?;
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding decides the framing: chunked last means chunked.
            for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                chunked = coding.eq_ignore_ascii_case("chunked");
                other_coding = !chunked;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // "5, 5" is allowed if every value agrees; anything else is malformed.
            for part in value.split(',') {
                let n: u64 = part.trim().parse().ok()?;
                if length.is_some_and(|l| l != n) {
                    return None;
                }
                length = Some(n);
            }
        }
    }
    // Transfer-Encoding wins over Content-Length; a non-chunked coding runs until close.
    let framing = if chunked {
        Framing::Chunked
    } else if other_coding {
        Framing::UntilClose
    } else if let Some(len) = length {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Some(Head { status, framing })
}

/// Where a chunked body ends: after the zero-size chunk and the trailer section.
fn chunked_end(body: &[u8]) -> ResponseEnd {
    let mut pos: usize = 0;
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        let Some(line_len) = find(rest, b"\r\n") else {
            return if rest.len() > MAX_CHUNK_LINE {
                ResponseEnd::UntilClose
            } else {
                ResponseEnd::Incomplete
            };
        };
        let line = &rest[..line_len];
        let size_field = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Some(size) = parse_hex(size_field) else {
            return ResponseEnd::UntilClose;
        };
        pos += line_len + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let rest = body.get(pos..).unwrap_or_default();
                let Some(len) = find(rest, b"\r\n") else {
                    return ResponseEnd::Incomplete;
                };
                pos += len + 2;
                if len == 0 {
                    return ResponseEnd::Complete;
                }
            }
        }
        // The chunk's data and its closing CRLF.
        let Some(next) = usize::try_from(size)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .and_then(|p| p.checked_add(2))
        else {
            return ResponseEnd::UntilClose;
        };
        if body.len() < next {
            return ResponseEnd::Incomplete;
        }
        if &body[next - 2..next] != b"\r\n" {
            return ResponseEnd::UntilClose;
        }
        pos = next;
    }
}

fn parse_hex(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::ResponseEnd::{Complete, Incomplete, UntilClose};
    use super::*;

    /// Every proper prefix of `full` must be incomplete, and `full` itself complete.
    fn assert_ends_exactly(full: &[u8], head_request: bool) {
        for cut in 0..full.len() {
            assert_eq!(
                response_end(&full[..cut], head_request),
                Incomplete,
                "prefix of {cut} bytes of {:?}",
                String::from_utf8_lossy(full)
            );
        }
        assert_eq!(response_end(full, head_request), Complete);
    }

    #[test]
    fn content_length() {
        assert_ends_exactly(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert_ends_exactly(b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n", false);
        assert_ends_exactly(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", false);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        assert_ends_exactly(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            false,
        );
        assert_ends_exactly(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n",
            false,
        );
    }

    #[test]
    fn chunked_wins_over_content_length() {
        assert_ends_exactly(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            false,
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        assert_ends_exactly(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            false,
        );
    }

    #[test]
    fn bodiless_responses() {
        assert_ends_exactly(b"HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_ends_exactly(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            false,
        );
        assert_ends_exactly(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
    }

    #[test]
    fn unframed_or_unknown_runs_until_close() {
        assert_eq!(
            response_end(b"HTTP/1.0 200 OK\r\n\r\nbody", false),
            UntilClose
        );
        assert_eq!(
            response_end(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            UntilClose
        );
        assert_eq!(
            response_end(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            UntilClose
        );
        assert_eq!(response_end(b"hello, echo", false), UntilClose);
        assert_eq!(response_end(b"HTTP/1.1 2x0 OK\r\n\r\n", false), UntilClose);
        assert_eq!(
            response_end(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", false),
            UntilClose
        );
        assert_eq!(
            response_end(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false
            ),
            UntilClose
        );
        assert_eq!(
            response_end(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n",
                false
            ),
            UntilClose
        );
    }

    #[test]
    fn short_prefixes_wait_for_more() {
        assert_eq!(response_end(b"", false), Incomplete);
        assert_eq!(response_end(b"HTT", false), Incomplete);
        assert_eq!(
            response_end(b"HTTP/1.1 200 OK\r\nContent-Le", false),
            Incomplete
        );
    }
}
