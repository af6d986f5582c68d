//! The framing both Unix sockets share: bytes read from one connection go into a bounded
//! buffer, whole requests come out in order however the bytes were chunked, and a request
//! that cannot complete within the bound, or an error after which the stream cannot be
//! trusted, ends the connection. Each protocol says only how to take one request off the
//! front of the buffer ([`Frames`]).

/// One protocol's framing.
pub trait Frames: Default {
    type Item;
    type Error;
    /// Bytes held while a request is incomplete; reaching this many is [`Frames::too_long`].
    const CAP: usize;
    /// One request (or a framing error) off the front of `buf`, if a whole one is there.
    fn next(&mut self, buf: &mut Vec<u8>) -> Option<Result<Self::Item, Self::Error>>;
    /// After this error the connection closes (it is answered first).
    fn fatal(e: &Self::Error) -> bool;
    fn too_long() -> Self::Error;
}

/// The reading side of one connection.
#[derive(Debug, Default)]
pub struct Framed<F> {
    frames: F,
    buf: Vec<u8>,
    closed: bool,
}

impl<F: Frames> Framed<F> {
    pub fn new() -> Self {
        Self {
            frames: F::default(),
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Takes bytes read from the socket; returns the requests they complete, in order. A
    /// fatal error is always last: answer it, then close. After it, bytes are ignored.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Result<F::Item, F::Error>> {
        let mut out = Vec::new();
        while !self.closed {
            let room = F::CAP.saturating_sub(self.buf.len());
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            while let Some(item) = self.frames.next(&mut self.buf) {
                let fatal = item.as_ref().is_err_and(F::fatal);
                out.push(item);
                if fatal {
                    self.close();
                    return out;
                }
            }
            if self.buf.len() >= F::CAP {
                out.push(Err(F::too_long()));
                self.close();
            } else if bytes.is_empty() {
                break;
            }
        }
        out
    }

    /// True once a fatal error was returned: write its reply, then close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes held of a request not yet complete.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn close(&mut self) {
        self.closed = true;
        self.buf = Vec::new();
        self.frames = F::default();
    }
}
