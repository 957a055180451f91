// SPDX-License-Identifier: GPL-2.0
//! The SET_IRQS conformance table of docs/device.md, read at build time,
//! and the boundary calls that check the driver against it: every index ×
//! action × data type × start/count at 0, 1, N − 1, N, N + 1 and `U32_MAX`,
//! argsz exact and one byte short, and every kind of EVENTFD datum. The
//! table is the specification; this module only matches calls to its rows.

use std::io;
use std::os::fd::AsRawFd;

use vslice::vfio::{self, Device, EventFd};

const DEVICE_MD: &str = include_str!("../../../../../docs/device.md");
const HEADER: &str = "| index | action | data | start, count | argsz | result | effect |";

const DATA_MASK: u32 = 0x7;
const ACTION_MASK: u32 = 0x38;

/// What an EVENTFD entry holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fd {
    Eventfd,
    MinusOne,
    MinusTwo,
    IntMin,
    NotEventfd,
    Closed,
}

const FDS: [Fd; 6] = [
    Fd::Eventfd,
    Fd::MinusOne,
    Fd::MinusTwo,
    Fd::IntMin,
    Fd::NotEventfd,
    Fd::Closed,
];

/// One SET_IRQS call as the table sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub index: u32,
    pub flags: u32,
    pub start: u32,
    pub count: u32,
    pub fd: Fd,
    pub short: bool,
    /// The index's vector count.
    pub n: u32,
}

#[derive(Debug)]
pub struct Row {
    pub line: usize,
    cells: [String; 6],
}

/// The rows of the table, in order; an error if the table is missing or
/// malformed (a test must not pass on an empty table).
pub fn rows() -> Result<Vec<Row>, String> {
    let mut lines = DEVICE_MD.lines().enumerate().skip_while(|(_, l)| l.trim() != HEADER);
    lines.next().ok_or("docs/device.md has no SET_IRQS conformance table")?;
    lines.next(); // the | --- | line
    let mut rows = Vec::new();
    for (i, l) in lines.take_while(|(_, l)| l.starts_with('|')) {
        let c: Vec<String> = l
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if c.len() != 7 {
            return Err(format!("docs/device.md:{}: {} cells, want 7", i + 1, c.len()));
        }
        let cells = [
            c[0].clone(),
            c[1].clone(),
            c[2].clone(),
            c[3].clone(),
            c[4].clone(),
            c[5].clone(),
        ];
        let row = Row { line: i + 1, cells };
        row.result()?;
        rows.push(row);
    }
    if rows.len() < 10 {
        return Err(format!("docs/device.md: the SET_IRQS table has {} rows", rows.len()));
    }
    Ok(rows)
}

fn index_name(i: u32) -> &'static str {
    match i {
        0 => "INTx",
        1 => "MSI",
        2 => "MSI-X",
        3 => "ERR",
        4 => "REQ",
        _ => "index ≥ 5",
    }
}

fn action_name(a: u32) -> &'static str {
    match a {
        vfio::IRQ_SET_ACTION_MASK => "MASK",
        vfio::IRQ_SET_ACTION_UNMASK => "UNMASK",
        _ => "TRIGGER",
    }
}

fn data_names(call: &Call) -> Vec<&'static str> {
    match call.flags & DATA_MASK {
        vfio::IRQ_SET_DATA_NONE => vec!["NONE"],
        vfio::IRQ_SET_DATA_BOOL => vec!["BOOL"],
        _ => vec![
            "EVENTFD",
            match call.fd {
                Fd::MinusTwo | Fd::IntMin => "EVENTFD fd < −1",
                Fd::NotEventfd => "EVENTFD not an eventfd",
                Fd::Closed => "EVENTFD closed fd",
                Fd::Eventfd | Fd::MinusOne => "EVENTFD",
            },
        ],
    }
}

fn in_list(cell: &str, names: &[&str]) -> bool {
    cell == "any" || cell.split(", ").any(|c| names.contains(&c))
}

impl Row {
    /// 0 or the errno the row gives.
    pub fn result(&self) -> Result<i32, String> {
        Ok(match self.cells[5].trim_matches('`') {
            "0" => 0,
            "EINVAL" => libc::EINVAL,
            "ENOTTY" => libc::ENOTTY,
            "EBADF" => libc::EBADF,
            x => return Err(format!("docs/device.md:{}: unknown result {x}", self.line)),
        })
    }

    pub fn matches(&self, c: &Call) -> bool {
        let [index, action, data, range, argsz, _] = &self.cells;
        let undefined = c.flags & !(DATA_MASK | ACTION_MASK) != 0;
        let one_action = (c.flags & ACTION_MASK).count_ones() == 1;
        let one_data = (c.flags & DATA_MASK).count_ones() == 1;
        let outside = c.start >= c.n || c.start as u64 + c.count as u64 > c.n as u64;
        in_list(index, &[index_name(c.index)])
            && match action.as_str() {
                "undefined bit" => undefined,
                "not one" => !one_action,
                "any" => true,
                a => !undefined && one_action && in_list(a, &[action_name(c.flags & ACTION_MASK)]),
            }
            && match data.as_str() {
                "not one" => !one_data,
                "any" => true,
                d => one_data && in_list(d, &data_names(c)),
            }
            && match range.as_str() {
                "outside" => outside,
                "count 0" => c.count == 0,
                _ => true,
            }
            && (argsz != "short" || c.short)
    }
}

/// The row that decides `c`: the first that matches.
pub fn expected<'a>(rows: &'a [Row], c: &Call) -> Option<&'a Row> {
    rows.iter().find(|r| r.matches(c))
}

/// Every call the conformance test sends for an instance with `n` MSI-X
/// vectors.
pub fn calls(n: u32) -> Vec<Call> {
    use vfio::*;
    let data = [
        0,
        IRQ_SET_DATA_NONE,
        IRQ_SET_DATA_BOOL,
        IRQ_SET_DATA_EVENTFD,
        IRQ_SET_DATA_NONE | IRQ_SET_DATA_BOOL,
        IRQ_SET_DATA_BOOL | IRQ_SET_DATA_EVENTFD,
        DATA_MASK,
    ];
    let actions = [
        0,
        IRQ_SET_ACTION_MASK,
        IRQ_SET_ACTION_UNMASK,
        IRQ_SET_ACTION_TRIGGER,
        IRQ_SET_ACTION_MASK | IRQ_SET_ACTION_UNMASK,
        IRQ_SET_ACTION_UNMASK | IRQ_SET_ACTION_TRIGGER,
        ACTION_MASK,
        IRQ_SET_ACTION_TRIGGER | 1 << 6,
        IRQ_SET_ACTION_TRIGGER | 1 << 31,
    ];
    let mut out = Vec::new();
    // INTx, MSI and ERR are one class (no vectors), as are 5 and above:
    // one of each, and U32_MAX.
    for index in [0, 2, 4, 5, u32::MAX] {
        let vectors = match index {
            MSIX_IRQ_INDEX => n,
            REQ_IRQ_INDEX => 1,
            _ => 0,
        };
        let mut starts = vec![0, 1, vectors.wrapping_sub(1), vectors, vectors + 1, u32::MAX];
        starts.sort_unstable();
        starts.dedup();
        for &start in &starts {
            let rest = vectors.saturating_sub(start);
            let mut counts = vec![0, 1, vectors.wrapping_sub(1), vectors, vectors + 1, rest, rest + 1];
            counts.extend([u32::MAX, u32::MAX - start]);
            counts.sort_unstable();
            counts.dedup();
            for &count in &counts {
                for &d in &data {
                    for &a in &actions {
                        // The datum matters only to TRIGGER + EVENTFD, and a
                        // short argsz only where nothing else is refused
                        // (elsewhere its row is shadowed by the same errno).
                        let fds: &[Fd] = if d | a == IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER {
                            &FDS
                        } else {
                            &FDS[..1]
                        };
                        let well_formed = d.count_ones() == 1 && a.count_ones() == 1 && a & !ACTION_MASK == 0;
                        let shorts: &[bool] = if well_formed { &[false, true] } else { &[false] };
                        for &fd in fds {
                            for &short in shorts {
                                out.push(Call {
                                    index,
                                    flags: d | a,
                                    start,
                                    count,
                                    fd,
                                    short,
                                    n: vectors,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Fds the calls use; kept open for the whole test.
pub struct Fds {
    efd: EventFd,
    not_eventfd: i32,
}

impl Fds {
    pub fn new(not_eventfd: i32) -> io::Result<Fds> {
        Ok(Fds {
            efd: EventFd::new(libc::EFD_CLOEXEC)?,
            not_eventfd,
        })
    }

    fn raw(&self, fd: Fd) -> i32 {
        match fd {
            Fd::Eventfd => self.efd.as_raw_fd(),
            Fd::MinusOne => -1,
            Fd::MinusTwo => -2,
            Fd::IntMin => i32::MIN,
            Fd::NotEventfd => self.not_eventfd,
            // Beyond any process's fd table: never open.
            Fd::Closed => i32::MAX,
        }
    }
}

/// The bytes of `c` as the ioctl takes them: the header, then at most
/// N + 2 data entries (a larger count is outside the index anyway).
pub fn encode(c: &Call, fds: &Fds) -> Vec<u8> {
    let entries = c.count.min(c.n + 2) as usize;
    let data: Vec<u8> = match c.flags & DATA_MASK {
        vfio::IRQ_SET_DATA_BOOL => vec![1; entries],
        vfio::IRQ_SET_DATA_EVENTFD => (0..entries).flat_map(|_| fds.raw(c.fd).to_ne_bytes()).collect(),
        _ => Vec::new(),
    };
    let size = match c.flags & DATA_MASK {
        vfio::IRQ_SET_DATA_BOOL => 1,
        vfio::IRQ_SET_DATA_EVENTFD => 4,
        _ => 0,
    };
    // Short: one byte below what the data needs, or below the header
    // when the call carries none.
    let need = 20 + entries as u32 * size;
    let argsz = if !c.short {
        20 + data.len() as u32
    } else if need > 20 {
        need - 1
    } else {
        19
    };
    let mut buf: Vec<u8> = [argsz, c.flags, c.index, c.start, c.count]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    buf.extend(data);
    buf
}

/// Sends every call to `d` and compares each result with its row.
pub fn run(d: &Device, n: u32) -> Result<usize, String> {
    let rows = rows()?;
    let fds = Fds::new(d.fd()).map_err(|e| format!("eventfd: {e}"))?;
    let calls = calls(n);
    let mut hit = vec![0usize; rows.len()];
    let mut bad = Vec::new();
    for c in &calls {
        let Some(row) = expected(&rows, c) else {
            bad.push(format!("{c:?}: no row of the table matches"));
            continue;
        };
        let pos = rows.iter().position(|r| std::ptr::eq(r, row)).unwrap_or(0);
        hit[pos] += 1;
        let want = row.result()?;
        let mut buf = encode(c, &fds);
        // SAFETY: `buf` is ours and holds at least argsz bytes.
        let r = unsafe { vslice_tests::raw::ioctl_ptr(d.fd(), vfio::VFIO_DEVICE_SET_IRQS(), buf.as_mut_ptr().cast()) };
        let got = match r {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(-1),
        };
        if got != want {
            bad.push(format!("{c:?}: errno {got}, docs/device.md:{} says {want}", row.line));
        }
    }
    // Leave nothing armed.
    let _ = d.set_irqs(
        vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
        vfio::MSIX_IRQ_INDEX,
        0,
        &[],
        0,
    );
    let _ = d.set_irqs(
        vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
        vfio::REQ_IRQ_INDEX,
        0,
        &[],
        0,
    );
    if let Some(r) = rows.iter().zip(&hit).find(|(_, &h)| h == 0) {
        bad.push(format!("docs/device.md:{}: no call reached this row", r.0.line));
    }
    if bad.is_empty() {
        return Ok(calls.len());
    }
    let total = bad.len();
    bad.truncate(8);
    Err(format!(
        "{total} of {} calls disagree with the table:\n{}",
        calls.len(),
        bad.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(index: u32, flags: u32, start: u32, count: u32, fd: Fd) -> Call {
        let n = match index {
            vfio::MSIX_IRQ_INDEX => 4,
            vfio::REQ_IRQ_INDEX => 1,
            _ => 0,
        };
        Call {
            index,
            flags,
            start,
            count,
            fd,
            short: false,
            n,
        }
    }

    fn want(c: Call) -> i32 {
        let rows = rows().expect("table");
        expected(&rows, &c).expect("a row").result().expect("result")
    }

    #[test]
    fn table_gives_the_documented_results() {
        use vfio::*;
        let t = IRQ_SET_ACTION_TRIGGER;
        let (e, n, b, m) = (
            IRQ_SET_DATA_EVENTFD,
            IRQ_SET_DATA_NONE,
            IRQ_SET_DATA_BOOL,
            IRQ_SET_ACTION_MASK,
        );
        // (index, flags, start, count, EVENTFD datum, result); the first is
        // the call that crashed the kernel: REQ, EVENTFD, count 0.
        let cases = [
            (REQ_IRQ_INDEX, e | t, 0, 0, Fd::Eventfd, libc::EINVAL),
            (REQ_IRQ_INDEX, b | t, 0, 0, Fd::Eventfd, libc::EINVAL),
            (REQ_IRQ_INDEX, n | t, 0, 0, Fd::Eventfd, 0),
            (REQ_IRQ_INDEX, n | m, 0, 1, Fd::Eventfd, libc::ENOTTY),
            (MSIX_IRQ_INDEX, e | t, 0, 4, Fd::MinusTwo, libc::EINVAL),
            (MSIX_IRQ_INDEX, e | t, 0, 4, Fd::Closed, libc::EBADF),
            (MSIX_IRQ_INDEX, e | t, 3, 1, Fd::MinusOne, 0),
            (MSIX_IRQ_INDEX, e | t, 3, 2, Fd::Eventfd, libc::EINVAL),
            (MSIX_IRQ_INDEX, n | t, 0, 0, Fd::Eventfd, 0),
            (MSIX_IRQ_INDEX, n | m, 0, 0, Fd::Eventfd, libc::EINVAL),
            (0, n | t, 0, 0, Fd::Eventfd, libc::EINVAL),
            (MSIX_IRQ_INDEX, n | t | 1 << 6, 0, 1, Fd::Eventfd, libc::EINVAL),
        ];
        for (index, flags, start, count, fd, r) in cases {
            assert_eq!(
                want(call(index, flags, start, count, fd)),
                r,
                "{index} {flags:#x} {start} {count} {fd:?}"
            );
        }
        let mut short = call(MSIX_IRQ_INDEX, IRQ_SET_DATA_BOOL | t, 0, 1, Fd::Eventfd);
        short.short = true;
        assert_eq!(want(short), libc::EINVAL);
    }

    #[test]
    fn every_row_is_reached_and_every_call_has_a_row() {
        let rows = rows().expect("table");
        let mut hit = vec![false; rows.len()];
        for c in calls(4) {
            let r = expected(&rows, &c).unwrap_or_else(|| panic!("{c:?}: no row"));
            hit[rows.iter().position(|x| std::ptr::eq(x, r)).unwrap()] = true;
        }
        for (r, h) in rows.iter().zip(hit) {
            assert!(h, "docs/device.md:{} is never reached", r.line);
        }
    }

    #[test]
    fn the_sweep_stays_small_enough_for_the_debug_vm() {
        // Each call costs milliseconds on the debug kernel under TCG.
        for n in [1, 4, 8, 64] {
            assert!(calls(n).len() < 20_000, "{n}: {}", calls(n).len());
        }
    }

    #[test]
    fn short_argsz_is_one_byte_below_the_data() {
        let fds = Fds {
            efd: EventFd::new(libc::EFD_CLOEXEC).unwrap(),
            not_eventfd: 0,
        };
        let mut c = call(
            vfio::MSIX_IRQ_INDEX,
            vfio::IRQ_SET_DATA_EVENTFD | vfio::IRQ_SET_ACTION_TRIGGER,
            0,
            3,
            Fd::Eventfd,
        );
        assert_eq!(u32::from_ne_bytes(encode(&c, &fds)[..4].try_into().unwrap()), 32);
        c.short = true;
        assert_eq!(u32::from_ne_bytes(encode(&c, &fds)[..4].try_into().unwrap()), 31);
    }
}
