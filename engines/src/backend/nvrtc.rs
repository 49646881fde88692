//! NVRTC, CUDA's run-time compiler, loaded from a known folder: it compiles the kernels of
//! device-resident frames ([`super::kernels::CUDA_SOURCE`]) to PTX on a GPU machine, and the
//! same source in the kernel checks of the test suite, which need no GPU.
//!
//! Why not through cudarc's loader: it tries `libnvrtc.so` before `libnvrtc.so.13` (the
//! `nvidia-cuda-nvrtc` wheel ships only the latter, and a system CUDA toolkit's `libnvrtc.so`
//! may be another version, whose PTX a CUDA 13.0 driver can reject), and finds nothing outside
//! the loader's search path. NVRTC itself opens `libnvrtc-builtins.so.13.0` by bare name at
//! compile time; loading that first, by path, makes the loader's lookup by name match the
//! library already loaded (by its soname), so no `LD_LIBRARY_PATH` is needed either.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use libloading::Library;

use super::dylib::reason;
use crate::error::{Error, Result};
use crate::runtime;

/// The NVRTC of CUDA 13 (what scripts/setup-gpu and scripts/setup-cuda-tools unpack).
pub const LIBRARY: &str = "libnvrtc.so.13";
/// NVRTC's builtins, which it opens by this name when it compiles.
pub const BUILTINS: &str = "libnvrtc-builtins.so.13.0";

type Status = c_int;
type Program = *mut c_void;

/// Where NVRTC is looked for, in order: next to the ONNX Runtime library in use (the GPU
/// runtime folder when `ORT_DYLIB_PATH` points there), the GPU runtime of scripts/setup-gpu,
/// the tools of scripts/setup-cuda-tools. After them, the loader's own search path.
pub fn default_dirs() -> Vec<PathBuf> {
    let assets = runtime::assets_dir();
    let mut dirs: Vec<PathBuf> = runtime::library_path()
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    dirs.push(assets.join("gpu/lib"));
    dirs.push(assets.join("gpu/tools/lib"));
    dirs
}

/// A loaded NVRTC.
pub struct Nvrtc {
    // Dropped after `lib` (fields drop in order), which may still refer to it.
    lib: Library,
    _builtins: Option<Library>,
    origin: String,
}

fn load_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!(
        "{what} (CUDA's run-time compiler, from scripts/setup-gpu or scripts/setup-cuda-tools) \
         could not be loaded: {e}"
    ))
}

impl Nvrtc {
    /// NVRTC from the first of `dirs` that holds [`LIBRARY`], else from the loader's search
    /// path; the error names the library and the folders looked in.
    pub fn load(dirs: &[PathBuf]) -> Result<Self> {
        let found = dirs.iter().find(|d| d.join(LIBRARY).is_file());
        // SAFETY: NVRTC's initialisers only set up the library; nothing else runs at load.
        let loaded = unsafe {
            match found {
                Some(dir) => {
                    let builtins = dir.join(BUILTINS);
                    let builtins =
                        if builtins.is_file() {
                            Some(Library::new(&builtins).map_err(|e| {
                                load_error(&builtins.display().to_string(), reason(&e))
                            })?)
                        } else {
                            None
                        };
                    let path = dir.join(LIBRARY);
                    Library::new(&path)
                        .map(|lib| (lib, builtins, path.display().to_string()))
                        .map_err(|e| load_error(&path.display().to_string(), reason(&e)))
                }
                None => Library::new(LIBRARY)
                    .map(|lib| (lib, None, LIBRARY.to_string()))
                    .map_err(|e| {
                        let looked: Vec<String> =
                            dirs.iter().map(|d| d.display().to_string()).collect();
                        load_error(
                            LIBRARY,
                            format!(
                                "not in {} nor on the loader's path ({})",
                                looked.join(", "),
                                reason(&e)
                            ),
                        )
                    }),
            }
        }?;
        let (lib, builtins, origin) = loaded;
        Ok(Self {
            lib,
            _builtins: builtins,
            origin,
        })
    }

    /// Where it was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn symbol<T: Copy>(&self, name: &str) -> Result<T> {
        // SAFETY: every caller names an NVRTC function and gives `T` its C signature.
        unsafe { self.lib.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| Error::Backend(format!("{}: no {name}: {e}", self.origin)))
    }

    fn check(&self, status: Status, call: &str) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        let text = self
            .symbol::<unsafe extern "C" fn(Status) -> *const c_char>("nvrtcGetErrorString")
            // SAFETY: NVRTC returns a static, NUL-terminated string for any status.
            .map(|f| {
                unsafe { CStr::from_ptr(f(status)) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|_| format!("status {status}"));
        Err(Error::Backend(format!("NVRTC {call}: {text}")))
    }

    /// NVRTC's (major, minor) version.
    pub fn version(&self) -> Result<(i32, i32)> {
        let f =
            self.symbol::<unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status>("nvrtcVersion")?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both pointers are to live integers.
        self.check(unsafe { f(&mut major, &mut minor) }, "nvrtcVersion")?;
        Ok((major, minor))
    }

    /// Compile CUDA C `source` to PTX with NVRTC `options`; a compile error carries NVRTC's
    /// log, which names the line.
    pub fn compile(&self, source: &str, name: &str, options: &[&str]) -> Result<String> {
        type Create = unsafe extern "C" fn(
            *mut Program,
            *const c_char,
            *const c_char,
            c_int,
            *const *const c_char,
            *const *const c_char,
        ) -> Status;
        type Compile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Status;
        type Size = unsafe extern "C" fn(Program, *mut usize) -> Status;
        type Text = unsafe extern "C" fn(Program, *mut c_char) -> Status;
        type Destroy = unsafe extern "C" fn(*mut Program) -> Status;
        let text = |what: &str| {
            CString::new(what)
                .map_err(|_| Error::Backend(format!("NVRTC input contains a NUL byte: {what:?}")))
        };
        let (c_source, c_name) = (text(source)?, text(name)?);
        let c_options = options
            .iter()
            .map(|o| text(o))
            .collect::<Result<Vec<_>>>()?;
        let option_ptrs: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
        let create = self.symbol::<Create>("nvrtcCreateProgram")?;
        let compile = self.symbol::<Compile>("nvrtcCompileProgram")?;
        let log_size = self.symbol::<Size>("nvrtcGetProgramLogSize")?;
        let get_log = self.symbol::<Text>("nvrtcGetProgramLog")?;
        let ptx_size = self.symbol::<Size>("nvrtcGetPTXSize")?;
        let get_ptx = self.symbol::<Text>("nvrtcGetPTX")?;
        let destroy = self.symbol::<Destroy>("nvrtcDestroyProgram")?;

        let mut program: Program = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings that outlive the call; no headers.
        let status = unsafe {
            create(
                &mut program,
                c_source.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        self.check(status, "nvrtcCreateProgram")?;
        // Read a text of the program (log or PTX) whose size NVRTC reports, NUL included.
        let read = |size: Size, get: Text| -> Result<String> {
            let mut n = 0usize;
            // SAFETY: `program` is live until destroyed below; `n` is a live integer.
            self.check(unsafe { size(program, &mut n) }, "size query")?;
            let mut buf = vec![0u8; n.max(1)];
            // SAFETY: `buf` holds the `n` bytes NVRTC said it writes.
            self.check(
                unsafe { get(program, buf.as_mut_ptr().cast()) },
                "text query",
            )?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
        };
        // SAFETY: `program` was created above; the options outlive the call.
        let status = unsafe { compile(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let result = if status == 0 {
            read(ptx_size, get_ptx)
        } else {
            let log = read(log_size, get_log).unwrap_or_default();
            Err(Error::Backend(format!(
                "NVRTC ({}) could not compile {name}: {}",
                self.origin,
                log.trim()
            )))
        };
        // SAFETY: created above and not used after this.
        unsafe { destroy(&mut program) };
        result
    }
}

/// The PTX ISA version (major, minor) a PTX text declares (`.version 9.0`).
pub fn ptx_isa(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(".version"))?;
    let (major, minor) = line.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_isa_is_read_from_the_version_directive() {
        let ptx = "//\n// Generated by NVIDIA NVVM Compiler\n\n.version 9.0\n.target sm_75\n";
        assert_eq!(ptx_isa(ptx), Some((9, 0)));
        assert_eq!(ptx_isa(".version 8.7\n"), Some((8, 7)));
        assert_eq!(ptx_isa(".target sm_75\n"), None);
    }

    #[test]
    fn a_missing_nvrtc_is_an_error_naming_it_and_where_it_was_looked_for() {
        let empty = std::env::temp_dir().join(format!("stylize-no-nvrtc-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        // Only meaningful where the loader cannot find one either (no CUDA toolkit installed).
        if let Err(e) = Nvrtc::load(std::slice::from_ref(&empty)) {
            let e = e.to_string();
            assert!(e.contains(LIBRARY), "{e}");
            assert!(e.contains(&empty.display().to_string()), "{e}");
        }
        // A file that is not a library is reported with the loader's reason and its path.
        std::fs::write(empty.join(LIBRARY), b"not an ELF file").unwrap();
        let e = Nvrtc::load(std::slice::from_ref(&empty))
            .err()
            .expect("a text file is not a library")
            .to_string();
        assert!(
            e.contains(&empty.join(LIBRARY).display().to_string()),
            "{e}"
        );
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
