//! The import reader (`convene_core::import`): arbitrary CSV and NDJSON
//! files of contacts, companies and reps. Every row is read or refused
//! with an error, never a panic, and rows are numbered in order.
#![no_main]

use convene_core::field::FieldRegistry;
use convene_core::import::{ImportEntity, ImportFormat, ImportReader, ImportSpec, Mapper};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, file)) = data.split_first() else { return };
    let format = if first & 1 == 0 { ImportFormat::Csv } else { ImportFormat::Ndjson };
    let entity = match (first >> 1) % 3 {
        0 => ImportEntity::Contacts,
        1 => ImportEntity::Companies,
        _ => ImportEntity::Reps,
    };
    let maps = if first & 0x80 != 0 { vec!["E-mail=email".to_string()] } else { Vec::new() };
    let Ok(spec) = ImportSpec::new(entity, None, &maps) else { return };
    let mapper = Mapper::new(spec, FieldRegistry::builtin_contact());
    let Ok(mut reader) = ImportReader::new(format, file, mapper, true) else { return };
    let mut last_line = 0;
    while let Some(record) = reader.next_record() {
        let Ok(record) = record else { break };
        assert!(record.line >= last_line, "rows go backwards: line {} after {last_line}", record.line);
        last_line = record.line;
        assert!(reader.position() <= file.len() as u64);
    }
});
