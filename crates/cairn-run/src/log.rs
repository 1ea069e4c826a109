//! The run's log, capped. Output goes to the sink as it arrives until the head is full; past
//! that, the last `tail` bytes are held back. If the whole log fits under the cap, they follow
//! at the end and nothing is lost; if not, a `[log truncated]` line marks where the middle was
//! left out and the tail follows it when the script ends, so the kept log is at most the cap
//! plus that line. The tail is kept because a failing script says why at its end.

use std::collections::VecDeque;
use std::io::Write;

/// At most this much of the cap is the tail.
const MAX_TAIL: u64 = 64 * 1024;

pub struct CappedLog<'a> {
    sink: &'a mut (dyn Write + Send),
    cap: u64,
    /// Bytes the head may still take.
    head_left: u64,
    tail: VecDeque<u8>,
    tail_size: usize,
    total: u64,
    marked: bool,
}

impl<'a> CappedLog<'a> {
    pub fn new(sink: &'a mut (dyn Write + Send), cap: u64) -> CappedLog<'a> {
        let tail_size = (cap / 2).min(MAX_TAIL);
        CappedLog {
            sink,
            cap,
            head_left: cap - tail_size,
            tail: VecDeque::new(),
            tail_size: usize::try_from(tail_size).unwrap_or(usize::MAX),
            total: 0,
            marked: false,
        }
    }

    /// Every byte the script wrote, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn over_cap(&self) -> bool {
        self.total > self.cap
    }

    /// A sink that fails (a closed pipe) loses the log, not the run: the script still runs to
    /// its end and the instance is still removed.
    pub fn write(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_len = usize::try_from(self.head_left)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let (head, rest) = bytes.split_at(head_len);
        if !head.is_empty() {
            self.head_left -= head.len() as u64;
            let _ = self.sink.write_all(head);
            let _ = self.sink.flush();
        }
        self.tail.extend(rest);
        let excess = self.tail.len().saturating_sub(self.tail_size);
        self.tail.drain(..excess);
        if self.over_cap() && !self.marked {
            self.marked = true;
            let line = format!(
                "\n[log truncated] the log passed its cap of {} bytes; its last {} bytes follow when the script ends\n",
                self.cap, self.tail_size
            );
            let _ = self.sink.write_all(line.as_bytes());
            let _ = self.sink.flush();
        }
    }

    /// Writes the held-back tail.
    pub fn finish(self) {
        if self.marked {
            let line = format!(
                "[log truncated] {} bytes were left out; the last {} follow\n",
                self.total - self.cap,
                self.tail.len()
            );
            let _ = self.sink.write_all(line.as_bytes());
        }
        let (first, second) = self.tail.as_slices();
        let _ = self.sink.write_all(first);
        let _ = self.sink.write_all(second);
        let _ = self.sink.flush();
    }
}

/// As a writer (what `Masker` writes into): every byte is taken, kept or not.
impl std::io::Write for CappedLog<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CappedLog::write(self, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(cap: u64, chunks: &[&[u8]]) -> (String, bool) {
        let mut sink = Vec::new();
        let mut log = CappedLog::new(&mut sink, cap);
        for chunk in chunks {
            log.write(chunk);
        }
        let over = log.over_cap();
        log.finish();
        (String::from_utf8(sink).unwrap_or_default(), over)
    }

    #[test]
    fn a_log_under_the_cap_is_kept_whole() {
        assert_eq!(
            logged(10, &[b"hello", b" you!"]),
            ("hello you!".to_owned(), false)
        );
        assert_eq!(logged(10, &[b"abc"]), ("abc".to_owned(), false));
    }

    #[test]
    fn a_log_over_the_cap_keeps_its_head_and_tail_around_a_marker() {
        let (text, over) = logged(10, &[b"0123456789", b"abcdefghij", b"XYZ"]);
        assert!(over);
        let (head, rest) = text.split_at(5);
        assert_eq!(head, "01234");
        assert!(rest.contains("[log truncated]"), "{text}");
        assert!(rest.contains("13 bytes were left out"), "{text}");
        assert!(text.ends_with("\nijXYZ"), "{text}");
    }
}
