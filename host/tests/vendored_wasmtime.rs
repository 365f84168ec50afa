//! The vendored wasmtime's patches (vendor/README.md), checked through wasmtime's own API where
//! the plugin tests would not notice a fault: patch 3 has each instance remember where its
//! module's code sits in the store's module registry, valid only while the registry has not
//! changed since. Here the registry changes (many more modules registered in the same store,
//! which moves its entries) between two function references of one instance.

use wasmtime::{Engine, Instance, Module, Store};

/// `(module (func (export "f") (result i32) i32.const 7) (func (export "g") (result i32)
/// i32.const 9))`, assembled by hand (the host builds wasmtime without its text parser).
const TWO_FUNCTIONS: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type section: () -> i32
    0x03, 0x03, 0x02, 0x00, 0x00, // function section: two functions of type 0
    0x07, 0x09, 0x02, 0x01, b'f', 0x00, 0x00, 0x01, b'g', 0x00, 0x01, // exports f and g
    0x0a, 0x0b, 0x02, 0x04, 0x00, 0x41, 0x07, 0x0b, 0x04, 0x00, 0x41, 0x09, 0x0b, // bodies
];

/// `(module (func (export "f") (result i32) i32.const <value>))`, `value` below 64.
fn one_function(value: u8) -> Vec<u8> {
    assert!(value < 64, "a one-byte signed LEB128");
    vec![
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type section: () -> i32
        0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
        0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // export f
        0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, value, 0x0b, // body
    ]
}

fn call(store: &mut Store<()>, instance: &Instance, name: &str) -> i32 {
    instance
        .get_typed_func::<(), i32>(&mut *store, name)
        .unwrap_or_else(|e| panic!("export {name}: {e:?}"))
        .call(&mut *store, ())
        .unwrap_or_else(|e| panic!("calling {name}: {e:?}"))
}

#[test]
fn a_function_reference_made_after_the_store_registered_more_modules_calls_the_right_code() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let first = Module::new(&engine, TWO_FUNCTIONS).expect("the two-function module compiles");
    let instance = Instance::new(&mut store, &first, &[]).expect("it instantiates");
    // The first reference: the instance looks up its module's code and remembers where it is.
    assert_eq!(call(&mut store, &instance, "f"), 7);

    // Sixty more modules in the same store: the registry grows (its entries move) each time.
    // Each compiled separately, so each is code of its own in the registry.
    for value in 0..60u8 {
        let module = Module::new(&engine, one_function(value)).expect("compiles");
        let other = Instance::new(&mut store, &module, &[]).expect("instantiates");
        assert_eq!(call(&mut store, &other, "f"), i32::from(value));
        // Memory freed by the registry's growth is reused at once, so that a reference built
        // from where the first module's code used to be would read something else.
        let junk: Vec<Vec<u8>> = (1..64).map(|size| vec![0xa5; size * 64]).collect();
        drop(std::hint::black_box(junk));
    }

    // A second reference of the first instance, after all of that: built from where its
    // module's code is now, it calls the right function.
    assert_eq!(call(&mut store, &instance, "g"), 9);
    assert_eq!(call(&mut store, &instance, "f"), 7);
}
