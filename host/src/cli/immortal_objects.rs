//! The last step of a Python build: marks the objects of the component's build-time snapshot
//! immortal, so that a fresh instance does not write their reference counts (and the host does
//! not copy those pages of the memory image back before the next one).
//!
//! The Python SDK (`plugins/sdk-python/src/orderpipe_plugin/snapshot.py`) leaves in the snapshot
//! the address of every object it holds (all kept alive), the reference count CPython reads as
//! immortal and the one to write, between two tags. Here that list is found in the component's
//! bytes, each address is located in the data segments of the core module holding the list (its
//! memory 0, active segments at constant offsets: how componentize-py stores the image), and
//! each object's count (the object's first word) is overwritten in place. Only data bytes change,
//! so the component stays exactly as valid as it was; a component without the list (an older
//! SDK, another language) is left alone.

use std::ops::Range;

use anyhow::{Context as _, bail};
use memchr::memmem;
use wasmparser::{DataKind, Encoding, Operator, Parser, Payload};

/// The list's opening tag (`snapshot.HEAD`), then five little-endian u32: the format's version,
/// the count to write, the smallest count read as immortal, the number of addresses, and the
/// addresses; then [`TAIL`].
const HEAD: &[u8] = b"orderpipe immortal objects";
const TAIL: &[u8] = b"end of immortal objects";
const FORMAT_VERSION: u32 = 1;

/// More addresses than this is not a list the SDK wrote (the order plugin's has about 40,000).
const MAX_OBJECTS: u32 = 10_000_000;

/// What [`mark`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Marked {
    /// Addresses listed.
    pub listed: usize,
    /// Counts overwritten.
    pub marked: usize,
    /// Objects immortal already (CPython's own, interned strings).
    pub immortal_already: usize,
    /// Addresses outside every data segment (zero-filled memory) or with a count of zero: left.
    pub skipped: usize,
}

/// One active data segment of memory 0: where its bytes start in memory and in the file.
#[derive(Debug, Clone)]
struct Segment {
    memory: Range<u32>,
    file_offset: usize,
}

/// Marks the listed objects of `component` immortal in place; `None` when it carries no list.
pub(crate) fn mark(component: &mut [u8]) -> anyhow::Result<Option<Marked>> {
    let Some(list) = find_list(component)? else {
        return Ok(None);
    };
    let modules = data_segments(component)?;
    let segments = modules
        .iter()
        .find(|segments| {
            segments.iter().any(|segment| {
                (segment.file_offset..segment.file_offset + segment.memory.len())
                    .contains(&list.file_offset)
            })
        })
        .context("the immortal-object list is not inside a data segment of memory 0")?;
    let mut marked = Marked {
        listed: list.addresses.len(),
        marked: 0,
        immortal_already: 0,
        skipped: 0,
    };
    for address in &list.addresses {
        let Some(at) = file_offset(segments, *address) else {
            marked.skipped += 1;
            continue;
        };
        let count = read_u32(component, at);
        if count == 0 {
            marked.skipped += 1;
        } else if count >= list.immortal_minimum {
            marked.immortal_already += 1;
        } else {
            component[at..at + 4].copy_from_slice(&list.immortal_count.to_le_bytes());
            marked.marked += 1;
        }
    }
    Ok(Some(marked))
}

/// The list as the SDK wrote it.
struct List {
    file_offset: usize,
    immortal_count: u32,
    immortal_minimum: u32,
    addresses: Vec<u32>,
}

/// The one well-formed list in `bytes` (the tag alone also appears in the SDK's compiled
/// constants, so an occurrence counts only with a known version, a bounded count and the closing
/// tag where the count puts it).
fn find_list(bytes: &[u8]) -> anyhow::Result<Option<List>> {
    let mut found = None;
    for start in memmem::find_iter(bytes, HEAD) {
        let header = start + HEAD.len();
        if header + 20 > bytes.len() || read_u32(bytes, header) != FORMAT_VERSION {
            continue;
        }
        let count = read_u32(bytes, header + 12);
        if count > MAX_OBJECTS {
            continue;
        }
        let addresses_at = header + 16;
        let tail_at = addresses_at + 4 * count as usize;
        if bytes.get(tail_at..tail_at + TAIL.len()) != Some(TAIL) {
            continue;
        }
        if found.is_some() {
            bail!("the component carries two immortal-object lists");
        }
        found = Some(List {
            file_offset: start,
            immortal_count: read_u32(bytes, header + 4),
            immortal_minimum: read_u32(bytes, header + 8),
            addresses: (0..count as usize)
                .map(|i| read_u32(bytes, addresses_at + 4 * i))
                .collect(),
        });
    }
    Ok(found)
}

/// Each core module's active data segments of memory 0 at constant offsets, sorted by address.
fn data_segments(bytes: &[u8]) -> anyhow::Result<Vec<Vec<Segment>>> {
    let mut modules: Vec<Vec<Segment>> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.context("reading the component")? {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } => modules.push(Vec::new()),
            Payload::DataSection(reader) => {
                let Some(segments) = modules.last_mut() else {
                    continue;
                };
                for data in reader {
                    let data = data.context("reading a data segment")?;
                    let DataKind::Active {
                        memory_index: 0,
                        offset_expr,
                    } = data.kind
                    else {
                        continue;
                    };
                    let mut operators = offset_expr.get_operators_reader();
                    let Ok(Operator::I32Const { value }) = operators.read() else {
                        continue;
                    };
                    let start = value as u32;
                    let Some(end) = u32::try_from(data.data.len())
                        .ok()
                        .and_then(|len| start.checked_add(len))
                    else {
                        continue;
                    };
                    segments.push(Segment {
                        memory: start..end,
                        file_offset: data.range.end - data.data.len(),
                    });
                }
            }
            _ => {}
        }
    }
    for segments in &mut modules {
        segments.sort_by_key(|segment| segment.memory.start);
    }
    Ok(modules)
}

/// Where the four bytes at `address` are in the file, if one segment holds all four.
fn file_offset(segments: &[Segment], address: u32) -> Option<usize> {
    let index = segments.partition_point(|segment| segment.memory.start <= address);
    let segment = &segments[index.checked_sub(1)?];
    let end = address.checked_add(4)?;
    (end <= segment.memory.end)
        .then(|| segment.file_offset + (address - segment.memory.start) as usize)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{ConstExpr, DataSection, MemorySection, MemoryType, Module};

    const MORTAL: u32 = 3;
    const IMMORTAL: u32 = 5 << 28;
    const MINIMUM: u32 = 1 << 30;

    fn list(addresses: &[u32]) -> Vec<u8> {
        let mut bytes = HEAD.to_vec();
        for word in [FORMAT_VERSION, IMMORTAL, MINIMUM, addresses.len() as u32] {
            bytes.extend(word.to_le_bytes());
        }
        for address in addresses {
            bytes.extend(address.to_le_bytes());
        }
        bytes.extend(TAIL);
        bytes
    }

    /// A module whose memory holds "objects" (a count, then a word) from address 1024 on, and the
    /// list at 4096; plus the tag alone once more, as the SDK's compiled constants hold it.
    fn module(objects: &[u32], addresses: &[u32]) -> Vec<u8> {
        let mut memory = MemorySection::new();
        memory.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut heap = Vec::new();
        for count in objects {
            heap.extend(count.to_le_bytes());
            heap.extend(0xfeed_u32.to_le_bytes());
        }
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(1024), heap);
        let mut constants = HEAD.to_vec();
        constants.extend([0xff; 40]);
        data.active(0, &ConstExpr::i32_const(2048), constants);
        data.active(0, &ConstExpr::i32_const(4096), list(addresses));
        let mut module = Module::new();
        module.section(&memory).section(&data);
        module.finish()
    }

    fn count_at(bytes: &[u8], address: u32) -> u32 {
        let segments = &data_segments(bytes).unwrap()[0];
        read_u32(bytes, file_offset(segments, address).unwrap())
    }

    #[test]
    fn listed_objects_get_the_immortal_count_and_nothing_else_changes() {
        // Objects at 1024, 1032, 1040: mortal, immortal already, count zero; 8192 is in no segment.
        let mut bytes = module(&[MORTAL, IMMORTAL + 7, 0], &[1024, 1032, 1040, 8192]);
        let before = bytes.clone();
        // Where the first object lies in the file, found by its bytes rather than through the
        // segments `mark` reads.
        let mut first = MORTAL.to_le_bytes().to_vec();
        first.extend(0xfeed_u32.to_le_bytes());
        let at = memmem::find(&before, &first).unwrap();
        let marked = mark(&mut bytes).unwrap().unwrap();
        assert_eq!(bytes[at..at + 4], IMMORTAL.to_le_bytes());
        assert_eq!(
            marked,
            Marked {
                listed: 4,
                marked: 1,
                immortal_already: 1,
                skipped: 2
            }
        );
        assert_eq!(count_at(&bytes, 1024), IMMORTAL);
        assert_eq!(
            count_at(&bytes, 1028),
            0xfeed,
            "the word after a count is left"
        );
        assert_eq!(count_at(&bytes, 1032), IMMORTAL + 7);
        let changed = before.iter().zip(&bytes).filter(|(a, b)| a != b).count();
        assert!(changed <= 4, "{changed} bytes changed");
        wasmparser::Validator::new().validate_all(&bytes).unwrap();
    }

    #[test]
    fn a_module_inside_a_component_is_found() {
        let inner = module(&[MORTAL, MORTAL], &[1024, 1032]);
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::RawSection {
            id: wasm_encoder::ComponentSectionId::CoreModule as u8,
            data: &inner,
        });
        let mut bytes = component.finish();
        let marked = mark(&mut bytes).unwrap().unwrap();
        assert_eq!(marked.marked, 2);
    }

    #[test]
    fn a_component_without_a_well_formed_list_is_left_alone() {
        let mut bytes = module(&[MORTAL], &[1024]);
        let tail = bytes.len() - TAIL.len();
        bytes[tail] ^= 0xff;
        let before = bytes.clone();
        assert_eq!(mark(&mut bytes).unwrap(), None);
        assert_eq!(bytes, before);
    }
}
