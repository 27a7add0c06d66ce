//! A restricted unpickler for `data.pkl`: it builds plain values (None,
//! bools, ints, floats, strings, tuples, lists, dicts) and tensor
//! descriptions, and nothing else.
//!
//! Python's unpickler imports any `module.name` a pickle names and calls it,
//! which is how a hostile `.pt` file runs code. Here a global is a name
//! looked up in a fixed table of the five callables and ten storage classes a
//! state dict uses; the only "calls" are building a dict, a tensor
//! description or a parameter from them. Any other global, and any opcode
//! outside the set `torch.save` emits (protocols 2 to 5), is an error naming
//! it. No code from the file is ever run.
//!
//! Values live in an arena and the stack, memo and containers hold indices,
//! so a value fetched from the memo many times is shared, not copied: the
//! arena grows by at most one value per opcode, so its size is bounded by the
//! pickle's length.

use super::bad;
use super::globals::{global_name, resolve, Global};
use super::opcodes::{self as op, opcode_name};
use crate::error::Result;
use crate::io::dtype::Elem;
use std::collections::HashMap;

/// The index of a value in the arena.
pub(super) type Id = usize;

/// A value built by the unpickler.
#[derive(Debug)]
pub(super) enum Value {
    None,
    /// A bool or float: a state dict never needs their values (a
    /// tensor's `requires_grad`, an optimizer's learning rate).
    Bool,
    Int(i64),
    Float,
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// A dict or `OrderedDict`, entries in insertion order.
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(Storage),
    Tensor(TensorView),
}

/// A storage as `torch.save`'s persistent id names it: the record
/// `data/<key>` holds `numel` values of `elem`.
#[derive(Debug)]
pub(super) struct Storage {
    pub(super) elem: Elem,
    pub(super) key: String,
    pub(super) numel: u64,
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view of a
/// storage (offset, sizes and strides in elements), not yet checked.
#[derive(Debug)]
pub(super) struct TensorView {
    pub(super) storage: Id,
    pub(super) offset: u64,
    pub(super) size: Vec<u64>,
    pub(super) stride: Vec<u64>,
}

/// The unpickled object: the arena and the index of the top-level value.
pub(super) struct Pickle {
    values: Vec<Value>,
    root: Id,
}

impl Pickle {
    pub(super) fn root(&self) -> Id {
        self.root
    }

    pub(super) fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// What the value is, for a message: `an int`, `a dict`, ...
    pub(super) fn kind(&self, id: Id) -> String {
        kind_of(&self.values, id)
    }
}

/// Unpickles `data.pkl`.
///
/// # Errors
/// [`crate::Error::Io`] naming the opcode or global that is not allowed, or
/// what is malformed, with its byte position.
pub(super) fn unpickle(input: &[u8]) -> Result<Pickle> {
    let mut m = Machine {
        input,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    Ok(Pickle {
        values: m.values,
        root,
    })
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    /// Stack lengths at each MARK (Python's metastack).
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<Id> {
        loop {
            let at = self.pos;
            let code = self.byte(at)?;
            if code == op::STOP {
                return self.pop(at);
            }
            let known = self.value_op(code, at)?
                || self.container_op(code, at)?
                || self.object_op(code, at)?;
            if !known {
                return Err(bad(format!(
                    "data.pkl: opcode {} at byte {at} is not one a state dict uses",
                    opcode_name(code)
                )));
            }
        }
    }

    /// Framing, marks, stack moves and plain values; false when `code` is
    /// none of them.
    fn value_op(&mut self, code: u8, at: usize) -> Result<bool> {
        match code {
            op::PROTO => {
                let v = self.byte(at)?;
                if v > 5 {
                    return Err(bad(format!(
                        "data.pkl uses pickle protocol {v}; convlab reads protocols 2 to 5"
                    )));
                }
            }
            // Frames only help a streaming reader; every byte is in memory.
            op::FRAME => {
                self.take(8, at)?;
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                if self.stack.len() > self.mark_floor() {
                    self.stack.pop();
                } else {
                    self.pop_mark(at)?;
                }
            }
            op::POP_MARK => {
                self.pop_mark(at)?;
            }
            op::DUP => {
                let top = self.top(at)?;
                self.stack.push(top);
            }
            op::NONE => self.push(Value::None),
            op::NEWTRUE | op::NEWFALSE => self.push(Value::Bool),
            op::BININT => {
                let b = self.array::<4>(at)?;
                self.push(Value::Int(i64::from(i32::from_le_bytes(b))));
            }
            op::BININT1 => {
                let b = self.byte(at)?;
                self.push(Value::Int(i64::from(b)));
            }
            op::BININT2 => {
                let b = self.array::<2>(at)?;
                self.push(Value::Int(i64::from(u16::from_le_bytes(b))));
            }
            op::LONG1 => {
                let v = self.long1(at)?;
                self.push(Value::Int(v));
            }
            op::BINFLOAT => {
                self.take(8, at)?;
                self.push(Value::Float);
            }
            op::SHORT_BINUNICODE => {
                let n = usize::from(self.byte(at)?);
                self.string(n, at)?;
            }
            op::BINUNICODE => {
                let n = u32::from_le_bytes(self.array::<4>(at)?);
                self.string(usize::try_from(n).unwrap_or(usize::MAX), at)?;
            }
            op::BINUNICODE8 => {
                let n = u64::from_le_bytes(self.array::<8>(at)?);
                self.string(usize::try_from(n).unwrap_or(usize::MAX), at)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts; false when `code` builds none of them.
    fn container_op(&mut self, code: u8, at: usize) -> Result<bool> {
        match code {
            op::EMPTY_TUPLE => self.push(Value::Tuple(Vec::new())),
            op::TUPLE => {
                let items = self.pop_mark(at)?;
                self.push(Value::Tuple(items));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1 + 1);
                let items = self.pop_n(n, at)?;
                self.push(Value::Tuple(items));
            }
            op::EMPTY_LIST => self.push(Value::List(Vec::new())),
            op::LIST => {
                let items = self.pop_mark(at)?;
                self.push(Value::List(items));
            }
            op::APPEND | op::APPENDS => {
                let items = if code == op::APPEND {
                    vec![self.pop(at)?]
                } else {
                    self.pop_mark(at)?
                };
                let list = self.top(at)?;
                match &mut self.values[list] {
                    Value::List(l) => l.extend(items),
                    _ => return Err(self.misuse(at, "appends to", list)),
                }
            }
            op::EMPTY_DICT => self.push(Value::Dict(Vec::new())),
            op::DICT => {
                let items = self.pop_mark(at)?;
                let pairs = pairs(items, at)?;
                self.push(Value::Dict(pairs));
            }
            op::SETITEM | op::SETITEMS => {
                let items = if code == op::SETITEM {
                    self.pop_n(2, at)?
                } else {
                    self.pop_mark(at)?
                };
                let pairs = pairs(items, at)?;
                let dict = self.top(at)?;
                match &mut self.values[dict] {
                    Value::Dict(d) => d.extend(pairs),
                    _ => return Err(self.misuse(at, "sets items of", dict)),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals, calls, states, storages and the memo; false when `code` is
    /// none of them.
    fn object_op(&mut self, code: u8, at: usize) -> Result<bool> {
        match code {
            op::GLOBAL => {
                let module = self.line(at)?;
                let name = self.line(at)?;
                let g = resolve(module, name)?;
                self.push(Value::Global(g));
            }
            op::STACK_GLOBAL => {
                let ids = self.pop_n(2, at)?;
                let (Value::Str(module), Value::Str(name)) =
                    (&self.values[ids[0]], &self.values[ids[1]])
                else {
                    return Err(bad(format!(
                        "data.pkl: STACK_GLOBAL at byte {at} needs two strings"
                    )));
                };
                let g = resolve(module, name)?;
                self.push(Value::Global(g));
            }
            op::REDUCE => {
                let args = self.pop(at)?;
                let callable = self.pop(at)?;
                let v = self.reduce(callable, args, at)?;
                self.stack.push(v);
            }
            op::BUILD => {
                // BUILD sets an object's attributes from a state. The one a
                // state dict has is OrderedDict's `_metadata` (module
                // versions), which convlab does not need.
                let _state = self.pop(at)?;
                let obj = self.top(at)?;
                if !matches!(self.values[obj], Value::Dict(_)) {
                    return Err(self.misuse(at, "sets the state of", obj));
                }
            }
            op::BINPERSID => {
                let pid = self.pop(at)?;
                let s = self.storage(pid, at)?;
                self.push(Value::Storage(s));
            }
            op::BINPUT => {
                let i = self.byte(at)?;
                self.memo_put(u32::from(i), at)?;
            }
            op::LONG_BINPUT => {
                let i = u32::from_le_bytes(self.array::<4>(at)?);
                self.memo_put(i, at)?;
            }
            op::MEMOIZE => {
                let i =
                    u32::try_from(self.memo.len()).map_err(|_| bad("data.pkl: memo is full"))?;
                self.memo_put(i, at)?;
            }
            op::BINGET => {
                let i = self.byte(at)?;
                self.memo_get(u32::from(i), at)?;
            }
            op::LONG_BINGET => {
                let i = u32::from_le_bytes(self.array::<4>(at)?);
                self.memo_get(i, at)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn push(&mut self, v: Value) {
        self.values.push(v);
        self.stack.push(self.values.len() - 1);
    }

    fn byte(&mut self, at: usize) -> Result<u8> {
        Ok(self.take(1, at)?[0])
    }

    fn array<const N: usize>(&mut self, at: usize) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, at)?);
        Ok(out)
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or_else(|| {
                bad(format!(
                    "data.pkl ends inside the opcode at byte {at} (it has {} bytes)",
                    self.input.len()
                ))
            })?;
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A newline-terminated ASCII word (GLOBAL's operands).
    fn line(&mut self, at: usize) -> Result<&'a str> {
        let rest = &self.input[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad(format!("data.pkl ends inside the GLOBAL at byte {at}")))?;
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| bad(format!("data.pkl: the GLOBAL at byte {at} is not UTF-8")))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize, at: usize) -> Result<()> {
        let b = self.take(n, at)?;
        let s = std::str::from_utf8(b)
            .map_err(|_| bad(format!("data.pkl: the string at byte {at} is not UTF-8")))?;
        self.push(Value::Str(s.to_string()));
        Ok(())
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes
    /// (sizes and offsets past 2^31 use it).
    fn long1(&mut self, at: usize) -> Result<i64> {
        let n = usize::from(self.byte(at)?);
        if n > 8 {
            return Err(bad(format!(
                "data.pkl: the {n}-byte integer at byte {at} does not fit in 64 bits"
            )));
        }
        let b = self.take(n, at)?;
        let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[..n].copy_from_slice(b);
        Ok(i64::from_le_bytes(buf))
    }

    fn mark_floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn top(&self, at: usize) -> Result<Id> {
        if self.stack.len() > self.mark_floor() {
            Ok(self.stack[self.stack.len() - 1])
        } else {
            Err(empty_stack(at))
        }
    }

    fn pop(&mut self, at: usize) -> Result<Id> {
        let v = self.top(at)?;
        self.stack.pop();
        Ok(v)
    }

    fn pop_n(&mut self, n: usize, at: usize) -> Result<Vec<Id>> {
        if self.stack.len() < self.mark_floor() + n {
            return Err(empty_stack(at));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>> {
        let mark = self.marks.pop().ok_or_else(|| {
            bad(format!(
                "data.pkl: the opcode at byte {at} needs a MARK and there is none"
            ))
        })?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, i: u32, at: usize) -> Result<()> {
        let top = self.top(at)?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn memo_get(&mut self, i: u32, at: usize) -> Result<()> {
        let id = *self.memo.get(&i).ok_or_else(|| {
            bad(format!(
                "data.pkl: byte {at} reads memo entry {i}, which was never written"
            ))
        })?;
        self.stack.push(id);
        Ok(())
    }

    fn misuse(&self, at: usize, what: &str, id: Id) -> crate::Error {
        bad(format!(
            "data.pkl: the opcode at byte {at} {what} {}, which convlab does not allow",
            kind_of(&self.values, id)
        ))
    }

    /// REDUCE: calls `callable` with the tuple `args`. Only the allowed
    /// globals can be called, and each only builds a value.
    fn reduce(&mut self, callable: Id, args: Id, at: usize) -> Result<Id> {
        let Value::Global(g) = self.values[callable] else {
            return Err(bad(format!(
                "data.pkl: REDUCE at byte {at} calls {}, which is not callable here",
                kind_of(&self.values, callable)
            )));
        };
        let Value::Tuple(args) = &self.values[args] else {
            return Err(bad(format!(
                "data.pkl: REDUCE at byte {at} passes {} as the arguments of {}",
                kind_of(&self.values, args),
                global_name(g)
            )));
        };
        let args = args.clone();
        let wrong = |what: &str| {
            bad(format!(
                "data.pkl: {} is called at byte {at} with {what}",
                global_name(g)
            ))
        };
        match g {
            Global::OrderedDict if args.is_empty() => {
                self.values.push(Value::Dict(Vec::new()));
                Ok(self.values.len() - 1)
            }
            Global::OrderedDict => Err(wrong("arguments (torch.save passes none)")),
            Global::RebuildTensorV2 => {
                if !(6..=7).contains(&args.len()) {
                    return Err(wrong(&format!("{} arguments, not 6 or 7", args.len())));
                }
                let view = self.tensor_view(&args, at)?;
                self.values.push(Value::Tensor(view));
                Ok(self.values.len() - 1)
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let n = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != n {
                    return Err(wrong(&format!("{} arguments, not {n}", args.len())));
                }
                match self.values[args[0]] {
                    Value::Tensor(_) => Ok(args[0]),
                    _ => Err(wrong(&format!(
                        "{} where a tensor belongs",
                        kind_of(&self.values, args[0])
                    ))),
                }
            }
            Global::Storage(_) => Err(wrong(
                "arguments; a storage class is not called by torch.save",
            )),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride,
    /// requires_grad, backward_hooks[, metadata])`: the first four describe
    /// the tensor; the rest do not change its values and are ignored.
    fn tensor_view(&self, args: &[Id], at: usize) -> Result<TensorView> {
        let ctx = |what: &str| {
            bad(format!(
                "data.pkl: the tensor built at byte {at} has {what}"
            ))
        };
        if !matches!(self.values[args[0]], Value::Storage(_)) {
            return Err(ctx(&format!(
                "{} where its storage belongs",
                kind_of(&self.values, args[0])
            )));
        }
        let offset = self
            .nonneg(args[1])
            .ok_or_else(|| ctx("a storage offset that is not an int >= 0"))?;
        let size = self
            .nonneg_tuple(args[2])
            .ok_or_else(|| ctx("a size that is not a tuple of ints >= 0"))?;
        let stride = self
            .nonneg_tuple(args[3])
            .ok_or_else(|| ctx("a stride that is not a tuple of ints >= 0"))?;
        if size.len() != stride.len() {
            return Err(ctx(&format!(
                "{} sizes but {} strides",
                size.len(),
                stride.len()
            )));
        }
        Ok(TensorView {
            storage: args[0],
            offset,
            size,
            stride,
        })
    }

    fn nonneg(&self, id: Id) -> Option<u64> {
        match self.values[id] {
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    fn nonneg_tuple(&self, id: Id) -> Option<Vec<u64>> {
        match &self.values[id] {
            Value::Tuple(items) => items.iter().map(|&i| self.nonneg(i)).collect(),
            _ => None,
        }
    }

    /// BINPERSID: `torch.save`'s persistent id of a storage,
    /// `('storage', <storage class>, key, location, numel)`. The location
    /// (`cpu`, `cuda:0`, ...) is ignored: everything loads to memory.
    fn storage(&self, pid: Id, at: usize) -> Result<Storage> {
        let wrong = || {
            bad(format!(
                "data.pkl: the persistent id at byte {at} is not ('storage', <storage class>, key, location, numel)"
            ))
        };
        let Value::Tuple(items) = &self.values[pid] else {
            return Err(wrong());
        };
        let [tag, class, key, location, numel] = items[..] else {
            return Err(wrong());
        };
        match (
            &self.values[tag],
            &self.values[class],
            &self.values[key],
            &self.values[location],
            self.nonneg(numel),
        ) {
            (
                Value::Str(t),
                Value::Global(Global::Storage(elem)),
                Value::Str(k),
                Value::Str(_),
                Some(n),
            ) if t == "storage" => Ok(Storage {
                elem: *elem,
                key: k.clone(),
                numel: n,
            }),
            _ => Err(wrong()),
        }
    }
}

fn empty_stack(at: usize) -> crate::Error {
    bad(format!(
        "data.pkl: the opcode at byte {at} needs a value and the stack is empty"
    ))
}

fn kind_of(values: &[Value], id: Id) -> String {
    match &values[id] {
        Value::Global(g) => format!("the global {}", global_name(*g)),
        Value::None => "None".into(),
        Value::Bool => "a bool".into(),
        Value::Int(_) => "an int".into(),
        Value::Float => "a float".into(),
        Value::Str(_) => "a string".into(),
        Value::Tuple(_) => "a tuple".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
        Value::Storage(_) => "a storage".into(),
        Value::Tensor(_) => "a tensor".into(),
    }
}

/// Pairs of a flat key, value, key, value ... list.
fn pairs(items: Vec<Id>, at: usize) -> Result<Vec<(Id, Id)>> {
    if items.len() % 2 != 0 {
        return Err(bad(format!(
            "data.pkl: the dict items at byte {at} are not key-value pairs ({} values)",
            items.len()
        )));
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}
