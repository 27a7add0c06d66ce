//! The globals a state dict needs: the fixed table the unpickler looks
//! names up in, in place of Python's import-and-call.

use super::bad;
use crate::error::Result;
use crate::io::dtype::Elem;
use crate::io::quoted;

/// The globals a state dict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    /// A typed storage class such as `torch.FloatStorage`.
    Storage(Elem),
}

/// The storage classes `torch.save` names, by element type.
const STORAGES: [(&str, Elem); 10] = [
    ("FloatStorage", Elem::F32),
    ("HalfStorage", Elem::F16),
    ("BFloat16Storage", Elem::BF16),
    ("DoubleStorage", Elem::F64),
    ("LongStorage", Elem::I64),
    ("IntStorage", Elem::I32),
    ("ShortStorage", Elem::I16),
    ("CharStorage", Elem::I8),
    ("ByteStorage", Elem::U8),
    ("BoolStorage", Elem::Bool),
];

/// The allowed global `module.name`, or an error naming it.
pub(super) fn resolve(module: &str, name: &str) -> Result<Global> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Some(Global::RebuildParameterWithState)
        }
        ("torch", class) => STORAGES
            .iter()
            .find(|(n, _)| *n == class)
            .map(|&(_, e)| Global::Storage(e)),
        _ => None,
    };
    g.ok_or_else(|| {
        // torch.save(model) pickles the module classes themselves.
        let hint = if module == "__main__" || module.starts_with("torch.nn.") {
            "; the file holds a whole model: save model.state_dict() instead"
        } else {
            ""
        };
        bad(format!(
            "data.pkl refers to {}, which is not one of the globals a state dict of \
             float, integer or bool tensors uses (nothing in the file is run){hint}",
            quoted(&format!("{module}.{name}"))
        ))
    })
}

/// The Python name of an allowed global.
pub(super) fn global_name(g: Global) -> String {
    match g {
        Global::OrderedDict => "collections.OrderedDict".into(),
        Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
        Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
        Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state".into(),
        Global::Storage(e) => {
            let name = STORAGES
                .iter()
                .find(|(_, x)| *x == e)
                .map_or("?", |(n, _)| n);
            format!("torch.{name}")
        }
    }
}

/// PyTorch's name of an element type (`torch.float32`, ...).
pub(super) fn dtype_name(e: Elem) -> &'static str {
    match e {
        Elem::F32 => "float32",
        Elem::F16 => "float16",
        Elem::BF16 => "bfloat16",
        Elem::F64 => "float64",
        Elem::I64 => "int64",
        Elem::I32 => "int32",
        Elem::I16 => "int16",
        Elem::I8 => "int8",
        Elem::U8 => "uint8",
        Elem::Bool => "bool",
        Elem::U16 => "uint16",
        Elem::U32 => "uint32",
        Elem::U64 => "uint64",
    }
}
