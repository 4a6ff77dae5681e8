#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nanotrader::fuzzing::kraken_rest(data));
