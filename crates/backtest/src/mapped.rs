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

/// Asks the kernel to back the 2 MiB-aligned parts of a large, still untouched buffer with huge
/// pages: a 16 MB column is then a handful of page faults instead of about 4,000 (each zeroing
/// 4 KiB, at several microseconds apiece in a VM). Only advice: where the kernel has no huge
/// page free, or does not do them, nothing changes.
pub fn advise_huge_pages<T>(buffer: &[T]) {
    const HUGE: usize = 2 << 20;
    let start = buffer.as_ptr() as usize;
    let end = start + std::mem::size_of_val(buffer);
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
