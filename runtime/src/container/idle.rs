//! What a supervisor gives back when it goes idle: its free heap, and the page-table entries
//! of its read-only file mappings. A supervisor spends its life waiting on a container and a
//! socket, but the start-up that came before (record, sandbox launch, log writer) touched
//! much of kiln's code and constants, and each of those pages stays mapped, counted in its
//! resident set, until it exits.
//!
//! Must not: touch a mapping that is writable or holds a page that was ever written. Only
//! private, file-backed mappings that are read-only (`r-xp` code, `r--p` constants) and hold
//! no anonymous (copied-on-write) page are released: dropping their entries changes nothing
//! but where the next access is served from (the page cache, where the pages stay, shared
//! with every kiln process). A relocated read-only region (RELRO) holds anonymous pages and
//! is kept.

use std::io::BufRead;

/// Releases what the process does not need while it waits; every step is best-effort.
pub fn release_idle_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::File::open("/proc/self/smaps") else {
        return;
    };
    let lines = std::io::BufReader::new(smaps).lines().map_while(Result::ok);
    for (start, len) in releasable(lines) {
        // SAFETY: the range is a private, read-only file mapping without anonymous pages
        // (checked by `releasable`); MADV_DONTNEED on it only drops page-table entries, and
        // the next access maps the same file contents again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// The address ranges of `/proc/self/smaps` entries that are read-only, private and
/// file-backed, with no anonymous page.
fn releasable(lines: impl Iterator<Item = String>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in lines {
        if let Some(anon) = line.strip_prefix("Anonymous:") {
            let kib = anon.trim().trim_end_matches("kB").trim();
            if kib != "0" {
                current = None;
            }
        } else if line.starts_with("VmFlags:") {
            out.extend(current.take());
        } else if let Some(range) = file_mapping(&line) {
            current = Some(range);
        } else if line.split_once(' ').is_some_and(|(r, _)| r.contains('-')) {
            // Another mapping's header (anonymous, writable, ...): not ours.
            current = None;
        }
    }
    out
}

/// The address range of a mappings header line when it is a private, read-only file
/// mapping (`r-xp` or `r--p` and a path).
fn file_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_ascii_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if !matches!(perms, "r-xp" | "r--p") || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(header: &str, anonymous_kib: u32) -> Vec<String> {
        vec![
            header.to_string(),
            "Rss:                 512 kB".to_string(),
            format!("Anonymous:           {anonymous_kib} kB"),
            "VmFlags: rd ex mr mw me".to_string(),
        ]
    }

    #[test]
    fn only_read_only_file_mappings_without_written_pages_are_released() {
        let lines = [
            entry(
                "7f3a00000000-7f3a00200000 r-xp 00028000 08:01 1234 /usr/lib/libc.so.6",
                0,
            ),
            entry(
                "7f3a00200000-7f3a00300000 r--p 00228000 08:01 1234 /usr/lib/libc.so.6",
                0,
            ),
            // RELRO: read-only now, but relocated (written) at start-up.
            entry(
                "7f3a00300000-7f3a00304000 r--p 00328000 08:01 1234 /usr/lib/libc.so.6",
                16,
            ),
            entry(
                "7f3a00304000-7f3a00306000 rw-p 0032c000 08:01 1234 /usr/lib/libc.so.6",
                8,
            ),
            entry("7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]", 0),
            entry("7f3b00000000-7f3b00200000 r--p 00000000 00:00 0", 0),
        ]
        .concat();
        assert_eq!(
            releasable(lines.into_iter()),
            vec![(0x7f3a00000000, 0x200000), (0x7f3a00200000, 0x100000)]
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        static TABLE: [u64; 4] = [1, 2, 3, 36];
        release_idle_memory();
        // Code and constants are read again from the page cache after their entries went.
        assert_eq!(TABLE.iter().sum::<u64>() + 6, 48);
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
