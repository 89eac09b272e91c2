//! What a supervisor gives back when it goes idle: its free heap, and the page-table entries
//! of its code. A supervisor spends its life waiting on a container and a socket, but the
//! start-up that came before (record, sandbox launch, log writer) touched much of kiln's
//! code, and each of those pages stays mapped, counted in its resident set, until it exits.
//!
//! Must not: touch a mapping that is writable or was ever written. Only the executable,
//! read-only, file-backed mappings (`r-xp` with a path) are released: their pages are never
//! copied on write, so dropping them changes nothing but where the next instruction fetch
//! is served from (the page cache, where the pages stay, shared with every kiln process).

use std::io::BufRead;

/// Releases what the process does not need while it waits; every step is best-effort.
pub fn release_idle_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(maps) = std::fs::File::open("/proc/self/maps") else {
        return;
    };
    for line in std::io::BufReader::new(maps).lines().map_while(Result::ok) {
        let Some((start, len)) = code_mapping(&line) else {
            continue;
        };
        // SAFETY: the range is a private, read-only, executable file mapping (checked by
        // `code_mapping`); MADV_DONTNEED on it only drops page-table entries, and the next
        // access maps the same file contents again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// The address range of a `/proc/self/maps` line when it is file-backed code (`r-xp`
/// and a path).
fn code_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_ascii_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if perms != "r-xp" || !path.starts_with('/') {
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

    #[test]
    fn only_file_backed_code_is_released() {
        let code = "7f3a00000000-7f3a00200000 r-xp 00028000 08:01 1234 /usr/lib/libc.so.6";
        assert_eq!(code_mapping(code), Some((0x7f3a00000000, 0x200000)));
        for other in [
            "7f3a00000000-7f3a00200000 rw-p 00028000 08:01 1234 /usr/lib/libc.so.6",
            "7f3a00000000-7f3a00200000 r--p 00028000 08:01 1234 /usr/lib/libc.so.6",
            "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]",
            "7f3a00000000-7f3a00200000 r-xp 00000000 00:00 0",
            "garbage",
        ] {
            assert_eq!(code_mapping(other), None, "{other}");
        }
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        release_idle_memory();
        // Code runs again from the page cache after its entries were dropped.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
