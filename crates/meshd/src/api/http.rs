//! Just enough HTTP/1.x for a Prometheus scrape: parse one request head, build one response.
//! Pure; the daemon's `metrics_server` moves the bytes. Anything that is not a
//! well-formed `GET`/`HEAD` gets an error status, never a panic.

/// The largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Index,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub route: Route,
    /// `HEAD`: headers only.
    pub head_only: bool,
}

/// An error reply: status code and reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16, pub &'static str);

pub const BAD_REQUEST: Status = Status(400, "Bad Request");
pub const NOT_FOUND: Status = Status(404, "Not Found");
pub const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
pub const TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");

/// Where the head ends (the index just past its blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a complete request head (up to and including its blank line).
pub fn parse(head: &[u8]) -> Result<Request, Status> {
    if head.len() > MAX_HEAD {
        return Err(TOO_LARGE);
    }
    let text = std::str::from_utf8(head).map_err(|_| BAD_REQUEST)?;
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !target.starts_with('/') {
        return Err(BAD_REQUEST);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(METHOD_NOT_ALLOWED)
        }
        _ => return Err(BAD_REQUEST),
    };
    let path = target.split('?').next().unwrap_or_default();
    let route = match path {
        "/metrics" => Route::Metrics,
        "/" => Route::Index,
        _ => return Err(NOT_FOUND),
    };
    Ok(Request { route, head_only })
}

/// A whole response; the connection closes after it.
pub fn response(status: Status, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status.0,
        status.1,
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The error reply for `status`.
pub fn error(status: Status) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        &format!("{} {}\n", status.0, status.1),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scrapes_and_errors() {
        let get = parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            get,
            Ok(Request {
                route: Route::Metrics,
                head_only: false
            })
        );
        let head = parse(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(head.map(|r| r.head_only), Ok(true));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::Index)
        );
        assert_eq!(parse(b"GET /secret HTTP/1.1\r\n\r\n"), Err(NOT_FOUND));
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(METHOD_NOT_ALLOWED)
        );
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(parse(b"GET metrics HTTP/1.1\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(
            parse(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"),
            Err(BAD_REQUEST)
        );
        assert_eq!(parse(b"GET /metrics HTTP/2.0\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(parse(&[b'a'; MAX_HEAD + 1]), Err(TOO_LARGE));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn responses_carry_their_length_and_head_has_no_body() {
        let r = String::from_utf8(response(Status(200, "OK"), "text/plain", "abc", false))
            .unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Content-Length: 3\r\n"));
        assert!(r.ends_with("\r\n\r\nabc"));
        let h = response(Status(200, "OK"), "text/plain", "abc", true);
        assert!(String::from_utf8_lossy(&h).ends_with("\r\n\r\n"));
        assert!(String::from_utf8_lossy(&error(NOT_FOUND)).starts_with("HTTP/1.1 404 Not Found"));
    }

    proptest! {
        #[test]
        fn any_bytes_get_a_reply_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = head_end(&bytes);
            let _ = parse(&bytes);
        }
    }
}
