//! Build script: make the `gunlearn` binary find libtorch at run time without `LD_LIBRARY_PATH`,
//! and keep `libtorch_cuda.so` linked so that `--device cuda` works where a GPU exists.

fn main() {
    // torch-sys (links = "tch") exports the libtorch library folder it linked against.
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("DEP_TCH_LIBTORCH_LIB is unset: torch-sys must be a direct dependency");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") {
        // rpath so the binary, tests and benches start without LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        // The linker drops libraries whose symbols are not referenced directly; libtorch_cuda
        // registers the CUDA backend from a static initialiser only, so force it to stay.
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-L{lib}");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
