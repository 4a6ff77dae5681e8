//! Files read in place through a read-only memory map: the page cache's own pages, with no copy
//! and no freshly zeroed memory. Reading a 16 MB column into a new vector costs about 4,000 page
//! faults (each page zeroed, then overwritten), which in this VM took longer than the backtest.
//!
//! A map is sound only while nobody changes the file under it. The bar cache is never rewritten
//! in place: a new one is renamed over it, and the mapped file lives on until unmapped. A CSV
//! being appended to is fine: only the length seen at opening is mapped. Truncating a file while
//! a backtest reads it ends the process with SIGBUS, as with any program that maps its input.

use std::fs::File;
use std::io;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

/// The whole file, mapped read-only; `None` for an empty file, which cannot be mapped, and for
/// anything but a regular file (a pipe, a device), which the caller reads as a stream. Pages
/// are mapped as they are first read (64 KiB at a time), by whichever thread reads them: asking
/// for them all at once (`MAP_POPULATE`) does it on one core, which measured slower.
pub fn map(file: &File) -> io::Result<Option<Arc<Mmap>>> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    // SAFETY: see the module's note; the map is read-only and no file we map is changed by us.
    let map = unsafe { MmapOptions::new().map(file)? };
    Ok(Some(Arc::new(map)))
}

/// A file mapped for reading, held by whoever loaded from it until they let it go. Unmapping a
/// large file clears a page table entry per page (2-3 ms for 95 MB in this VM) while holding the
/// process's memory-map lock, and every page fault and thread start of the process waits for
/// it: unmapped on a thread of its own right after the parse, it held up the backtest's helper
/// thread's start by 4 ms (measured, every run). So the caller releases it once its own work no
/// longer faults in fresh memory (before it writes its output), and a thread unmaps it then.
pub struct MappedText(Arc<Mmap>);

impl MappedText {
    pub(crate) fn new(map: Arc<Mmap>) -> Self {
        Self(map)
    }

    /// Unmaps the file on a thread of its own (here, for a small file or when no thread starts).
    /// Dropped instead, it is unmapped there and then.
    pub fn release(self) {
        if self.0.len() >= 16 << 20 {
            let map = self.0;
            let _ = std::thread::Builder::new().spawn(move || drop(map));
        }
    }
}

/// Bytes in a huge page.
const HUGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned parts of a large, still untouched buffer with huge
/// pages: a 16 MB column is then a handful of page faults instead of about 4,000 (each zeroing
/// 4 KiB, at several microseconds apiece in a VM). Only advice: where the kernel has no huge
/// page free, or does not do them, nothing changes.
#[cfg(test)]
pub fn advise_huge_pages<T>(buffer: &[T]) {
    advise_huge_range(buffer.as_ptr() as usize, std::mem::size_of_val(buffer));
}

/// A capacity of at least `min` values of `T` for a buffer that will be advised to huge pages
/// (`advise_huge_capacity`): a large one gets 2 MiB of spare room past `min`, never touched, so
/// that the 2 MiB page holding its last values lies wholly inside the block and can be a huge
/// page. (The one holding its first values cannot: the allocator writes its header there
/// before any advice.) Without it, the end of each large buffer was faulted in 4 KiB at a
/// time: on the 2M-bar benchmark about 250 page faults a buffer, 2 microseconds each in this
/// VM (`perf record -e page-faults -d`).
pub fn huge_capacity<T>(min: usize) -> usize {
    let size = std::mem::size_of::<T>().max(1);
    if min.saturating_mul(size) < HUGE {
        return min;
    }
    min.saturating_add(HUGE / size)
}

/// Asks for huge pages under the whole room of a vector (its length and its spare capacity), for
/// a buffer that is reserved large and then filled: only the pages written are ever faulted in,
/// each 2 MiB at once (in this VM, usually about 0.3 microseconds per 4 KiB of a huge page,
/// against 2 for a 4 KiB page fault).
pub fn advise_huge_capacity<T>(buffer: &Vec<T>) {
    advise_huge_range(buffer.as_ptr() as usize, buffer.capacity() * std::mem::size_of::<T>());
}

fn advise_huge_range(start: usize, bytes: usize) {
    let end = start + bytes;
    let aligned_start = start.next_multiple_of(HUGE);
    let aligned_end = end / HUGE * HUGE;
    if aligned_end <= aligned_start {
        return;
    }
    // SAFETY: madvise only advises on pages of a live allocation; it changes no memory contents.
    let _ = unsafe {
        libc::madvise(
            aligned_start as *mut libc::c_void,
            aligned_end - aligned_start,
            libc::MADV_HUGEPAGE,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_get_a_huge_page_of_room_past_their_end() {
        // Small buffers are left as asked.
        assert_eq!(huge_capacity::<i64>(1000), 1000);
        assert_eq!(huge_capacity::<u8>(0), 0);
        assert_eq!(huge_capacity::<u8>(HUGE - 1), HUGE - 1);
        assert_eq!(huge_capacity::<u8>(HUGE), 2 * HUGE);
        assert_eq!(huge_capacity::<i64>(2_000_000), 2_000_000 + HUGE / 8);
        assert_eq!(huge_capacity::<[u8; 120]>(100_000), 100_000 + HUGE / 120);
        assert_eq!(huge_capacity::<u8>(usize::MAX), usize::MAX);
    }

    #[test]
    fn advice_on_any_buffer_changes_nothing_it_holds() {
        let mut column = Vec::<i64>::with_capacity(huge_capacity::<i64>(1 << 20));
        advise_huge_capacity(&column);
        column.extend(0..1 << 20);
        assert!(column.iter().enumerate().all(|(i, &v)| v == i as i64));
        let small = vec![7u8; 100];
        advise_huge_pages(&small);
        advise_huge_capacity(&small);
        assert_eq!(small, vec![7u8; 100]);
    }
}
