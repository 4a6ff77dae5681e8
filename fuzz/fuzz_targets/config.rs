#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nanotrader::fuzzing::config(data));
