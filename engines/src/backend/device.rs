//! Device-resident frames on an NVIDIA GPU (feature `tensorrt`).
//!
//! One upload of the packed frame; the [`kernels`] (compiled by NVRTC at run time) resize and
//! convert it into the model input; ONNX Runtime runs the model on tensors bound to device
//! memory (I/O binding); the output kernel writes the frame's colour bytes back in place; one
//! download. Two host↔device copies per frame, three when the style vector changed (it stays
//! on the device otherwise). The host path of the same backend makes ONNX Runtime copy the
//! input, the output and the style vector every frame, and converts and resizes on the CPU.
//!
//! Nothing here runs without a GPU; the same pipeline runs on the CPU with the kernels'
//! mirrors in [`kernels::device_frame_on_cpu`], where it is tested.

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{Tensor as OrtTensor, TensorValueType};

use super::device_smoothing::{DeviceSmoother, FrameTensors};
use super::kernels::{self, FramePlan, Packed, Planar};
use super::nvrtc::{self, Nvrtc};
use super::smoothing::Smoothing;
use crate::error::{Error, Result};
use crate::model::{self, ModelInfo};
use crate::timings::Timings;

// SAFETY: `#[repr(C)]` plain-old-data structs with the layout of `struct Packed` and
// `struct Planar` in the CUDA source (checked by the `kernels` tests), passed by value.
unsafe impl DeviceRepr for Packed {}
unsafe impl DeviceRepr for Planar {}

fn cuda(e: impl std::fmt::Display) -> Error {
    Error::Inference(format!("CUDA: {e}"))
}

fn onnx(e: ort::Error) -> Error {
    Error::Inference(e.to_string())
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn cuda_memory() -> Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CUDA,
        0,
        AllocatorType::Device,
        MemoryType::Default,
    )
    .map_err(onnx)
}

fn launch_config(width: i32, height: i32) -> LaunchConfig {
    let ((gx, gy), (bx, by)) = kernels::grid(width as usize, height as usize);
    LaunchConfig {
        grid_dim: (gx, gy, 1),
        block_dim: (bx, by, 1),
        shared_mem_bytes: 0,
    }
}

/// A tensor in device memory from ONNX Runtime's CUDA allocator, with its device address
/// for the kernels. Allocated by ONNX Runtime rather than wrapped around a cudarc buffer:
/// `IoBinding::bind_input` copies wrapped (borrowed) tensors, but binds owned ones as they are.
struct DeviceTensor {
    tensor: OrtTensor<f32>,
    shape: Vec<i64>,
    ptr: u64,
}

impl DeviceTensor {
    fn new(allocator: &Allocator, shape: Vec<i64>) -> Result<Self> {
        let mut tensor = OrtTensor::<f32>::new(allocator, shape.clone()).map_err(onnx)?;
        let ptr = tensor.data_ptr_mut() as u64;
        Ok(Self { tensor, shape, ptr })
    }
}

/// The per-backend device state: compiled kernels, buffers and the I/O binding.
pub(super) struct CudaFrames {
    // Dropped first (fields drop in order): it holds ONNX Runtime values over the buffers.
    binding: IoBinding,
    input: Option<DeviceTensor>,
    /// The style vector on the device and the values it holds.
    conditioning: Option<(Vec<f32>, DeviceTensor)>,
    frame: Option<CudaSlice<u8>>,
    allocator: Allocator,
    stream: Arc<CudaStream>,
    to_planar: CudaFunction,
    to_packed: CudaFunction,
    smoother: DeviceSmoother,
}

impl CudaFrames {
    /// Compile the kernels and prepare the binding for `session` (a CUDA or TensorRT one).
    pub(super) fn new(session: &Session) -> Result<Self> {
        // SAFETY: only dlopen()s the library to see whether it exists; every cudarc call
        // below would panic without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::Backend(
                "libcuda.so (the NVIDIA driver) was not found".into(),
            ));
        }
        // NVRTC by path (see `nvrtc` for why not through cudarc's loader).
        let nvrtc = Nvrtc::load(&nvrtc::default_dirs())?;
        let ptx = kernels::compile_ptx(&nvrtc)?;
        let ctx = CudaContext::new(0).map_err(cuda)?;
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(cuda)?;
        let to_planar = module
            .load_function(kernels::PACKED_TO_PLANAR)
            .map_err(cuda)?;
        let to_packed = module
            .load_function(kernels::PLANAR_TO_PACKED)
            .map_err(cuda)?;
        let stream = ctx.default_stream();
        let smoother = DeviceSmoother::new(&module, stream.clone())?;
        let allocator = Allocator::new(session, cuda_memory()?).map_err(onnx)?;
        let mut binding = session.create_binding().map_err(onnx)?;
        // ONNX Runtime allocates the output on the device at whatever size the model gives.
        binding
            .bind_output_to_device(model::STYLIZED, &cuda_memory()?)
            .map_err(onnx)?;
        Ok(Self {
            binding,
            input: None,
            conditioning: None,
            frame: None,
            allocator,
            stream,
            to_planar,
            to_packed,
            smoother,
        })
    }

    /// Stylize one packed frame in place (see the module comment for the steps).
    pub(super) fn run_frame(
        &mut self,
        session: &mut Session,
        info: &ModelInfo,
        data: &mut [u8],
        plan: &FramePlan,
        conditioning: &[f32],
        smoothing: Option<Smoothing>,
    ) -> Result<Timings> {
        let mut timings = Timings::default();
        let bytes = plan.frame.bytes();
        if data.len() < bytes {
            return Err(Error::Frame(format!(
                "buffer of {} bytes is smaller than the {bytes} bytes of the frame",
                data.len()
            )));
        }
        let data = &mut data[..bytes];

        let start = Instant::now();
        let input = self.input_tensor(&plan.input)?;
        timings.host_copies += self.upload_conditioning(info, conditioning)?;
        let stream = self.stream.clone();
        if self.frame.as_ref().map(CudaSlice::len) != Some(bytes) {
            self.frame = None;
        }
        let frame = match &mut self.frame {
            Some(frame) => frame,
            empty => empty.insert(stream.alloc_zeros::<u8>(bytes).map_err(cuda)?),
        };
        stream.memcpy_htod(&*data, frame).map_err(cuda)?;
        timings.host_copies += 1;
        let mut launch = stream.launch_builder(&self.to_planar);
        launch
            .arg(&*frame)
            .arg(&plan.frame)
            .arg(&input)
            .arg(&plan.input);
        // SAFETY: the arguments match `packed_to_planar(const uchar*, Packed, float*,
        // Planar)`; the frame buffer holds `plan.frame.bytes()` bytes and the input tensor
        // `plan.input.len()` floats, which bound every index the kernel computes.
        unsafe { launch.launch(launch_config(plan.input.width, plan.input.height)) }
            .map_err(cuda)?;
        // ONNX Runtime reads the input on its own stream: it must be complete first.
        stream.synchronize().map_err(cuda)?;
        timings.convert_in_ms = ms_since(start);

        let start = Instant::now();
        let output = session
            .run_binding(&self.binding)
            .map_err(onnx)?
            .remove(model::STYLIZED)
            .ok_or_else(|| Error::Inference(format!("no `{}` output", model::STYLIZED)))?
            .downcast::<TensorValueType<f32>>()
            .map_err(onnx)?;
        // ONNX Runtime synchronises its stream at the end of a run; the bound output is
        // synchronised explicitly too, as the output kernel runs on another stream.
        self.binding.synchronize_outputs().map_err(onnx)?;
        let dims: Vec<i64> = output.shape().iter().copied().collect();
        let out_plan = plan.input.output(&dims)?;
        let out_ptr = output.data_ptr() as u64;
        timings.infer_ms = ms_since(start);

        let start = Instant::now();
        if let Some(smoothing) = smoothing {
            // The model's output is smoothed against the previous frame on the device, then
            // written into the frame (see `smoothing`).
            let tensors = FrameTensors {
                input,
                input_plan: plan.input,
                output: out_ptr,
                output_plan: out_plan,
                frame: &mut *frame,
                frame_plan: plan.frame,
                to_packed: &self.to_packed,
            };
            timings.host_copies += self.smoother.finish_frame(tensors, smoothing)?;
            timings.temporal_ms = ms_since(start);
        } else {
            let mut launch = stream.launch_builder(&self.to_packed);
            launch
                .arg(&out_ptr)
                .arg(&out_plan)
                .arg(&mut *frame)
                .arg(&plan.frame);
            // SAFETY: the arguments match `planar_to_packed(const float*, Planar, uchar*,
            // Packed)`; `out_plan` was built from the output's own shape and the frame buffer
            // holds `plan.frame.bytes()` bytes.
            unsafe { launch.launch(launch_config(plan.frame.width, plan.frame.height)) }
                .map_err(cuda)?;
        }
        let start = Instant::now();
        stream.memcpy_dtoh(&*frame, data).map_err(cuda)?;
        timings.host_copies += 1;
        stream.synchronize().map_err(cuda)?;
        // The output was read by the kernel above, which the synchronisation waited for.
        drop(output);
        timings.convert_out_ms = ms_since(start);
        Ok(timings)
    }

    /// The model input on the device at the plan's size, bound to `content`; its address.
    fn input_tensor(&mut self, planar: &Planar) -> Result<u64> {
        let shape = vec![1, 3, i64::from(planar.height), i64::from(planar.width)];
        match &self.input {
            Some(t) if t.shape == shape => Ok(t.ptr),
            _ => {
                let t = DeviceTensor::new(&self.allocator, shape)?;
                self.binding
                    .bind_input(model::CONTENT, &t.tensor)
                    .map_err(onnx)?;
                let ptr = t.ptr;
                self.input = Some(t);
                Ok(ptr)
            }
        }
    }

    /// Put the style vector on the device when it changed; returns the copies made (0 or 1).
    fn upload_conditioning(&mut self, info: &ModelInfo, values: &[f32]) -> Result<u32> {
        let Some(name) = info.family.conditioning_input() else {
            return Ok(0);
        };
        if values.len() != info.conditioning_len {
            return Err(Error::Inference(format!(
                "`{name}` needs {} values, got {}",
                info.conditioning_len,
                values.len()
            )));
        }
        if let Some((held, _)) = &self.conditioning {
            if held == values {
                return Ok(0);
            }
        }
        let n = values.len() as i64;
        let shape = if name == model::STYLE_WEIGHTS {
            vec![n]
        } else {
            vec![1, n]
        };
        let target = match self.conditioning.take() {
            Some((_, t)) => t,
            None => {
                let t = DeviceTensor::new(&self.allocator, shape)?;
                self.binding.bind_input(name, &t.tensor).map_err(onnx)?;
                t
            }
        };
        self.stream.context().bind_to_thread().map_err(cuda)?;
        // SAFETY: `target` holds `values.len()` floats (checked against the model above); the
        // copy is complete before `values` can go away, since the stream is synchronised
        // before the model runs.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(target.ptr, values, self.stream.cu_stream())
        }
        .map_err(cuda)?;
        self.conditioning = Some((values.to_vec(), target));
        Ok(1)
    }
}
