//! ggml's tensor types: their numbers in GGUF, block sizes and bytes per block.

/// A ggml tensor type. duet computes with the ones [`GgmlType::is_supported`] says; the
/// others are known by size so a file that holds them can still be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 32 weights: f16 scale, 4-bit values − 8.
    Q4_0,
    /// 32 weights: f16 scale and minimum, 4-bit values.
    Q4_1,
    /// 32 weights: f16 scale, 5-bit values − 16.
    Q5_0,
    /// 32 weights: f16 scale and minimum, 5-bit values.
    Q5_1,
    /// 32 weights: f16 scale, 8-bit values.
    Q8_0,
    /// 32 values: f16 scale and scaled sum, 8-bit values (activations).
    Q8_1,
    /// 256 weights in 16 groups, 2-bit.
    Q2_K,
    /// 256 weights in 16 groups, 3-bit.
    Q3_K,
    /// 256 weights in 8 groups of 32: 6-bit scales and minimums, 4-bit values.
    Q4_K,
    /// 256 weights in 8 groups of 32: 6-bit scales and minimums, 5-bit values.
    Q5_K,
    /// 256 weights in 16 groups of 16: 8-bit scales, 6-bit values − 32.
    Q6_K,
    /// 256 values: f32 scale, 8-bit values, sums of 16 (activations of k-quants).
    Q8_K,
    /// An importance-matrix or ternary type duet does not compute with.
    Other(u32),
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
}

impl GgmlType {
    /// The type for GGUF's number, or `None` when ggml does not define it.
    pub fn from_u32(t: u32) -> Option<Self> {
        Some(match t {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            15 => Self::Q8_K,
            24 => Self::I8,
            25 => Self::I16,
            26 => Self::I32,
            27 => Self::I64,
            28 => Self::F64,
            30 => Self::BF16,
            16..=23 | 29 | 34 | 35 | 39 => Self::Other(t),
            _ => return None,
        })
    }

    /// GGUF's number for the type.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::Q8_K => 15,
            Self::I8 => 24,
            Self::I16 => 25,
            Self::I32 => 26,
            Self::I64 => 27,
            Self::F64 => 28,
            Self::BF16 => 30,
            Self::Other(t) => t,
        }
    }

    /// Values per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 | Self::I32 => (1, 4),
            Self::F16 | Self::BF16 | Self::I16 => (1, 2),
            Self::I8 => (1, 1),
            Self::I64 | Self::F64 => (1, 8),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q8_1 => (32, 36),
            Self::Q2_K => (256, 84),
            Self::Q3_K => (256, 110),
            Self::Q4_K => (256, 144),
            Self::Q5_K => (256, 176),
            Self::Q6_K => (256, 210),
            Self::Q8_K => (256, 292),
            Self::Other(t) => match t {
                16 => (256, 66),  // IQ2_XXS
                17 => (256, 74),  // IQ2_XS
                18 => (256, 98),  // IQ3_XXS
                19 => (256, 50),  // IQ1_S
                20 => (32, 18),   // IQ4_NL
                21 => (256, 110), // IQ3_S
                22 => (256, 82),  // IQ2_S
                23 => (256, 136), // IQ4_XS
                29 => (256, 56),  // IQ1_M
                34 => (256, 54),  // TQ1_0
                35 => (256, 66),  // TQ2_0
                _ => (32, 17),    // MXFP4
            },
        }
    }

    /// Bytes of a row of `n` values, or `None` when `n` is not a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        let (bs, bytes) = self.block();
        n.is_multiple_of(bs).then(|| n / bs * bytes)
    }

    /// Whether duet computes with this type (dequantizes it and multiplies by it).
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q5_1
                | Self::Q8_0
                | Self::Q4_K
                | Self::Q5_K
                | Self::Q6_K
        )
    }

    /// The name llama.cpp prints (`Q4_K`, `F16`, ...).
    pub fn name(self) -> String {
        match self {
            Self::Other(t) => match t {
                16 => "IQ2_XXS".into(),
                17 => "IQ2_XS".into(),
                18 => "IQ3_XXS".into(),
                19 => "IQ1_S".into(),
                20 => "IQ4_NL".into(),
                21 => "IQ3_S".into(),
                22 => "IQ2_S".into(),
                23 => "IQ4_XS".into(),
                29 => "IQ1_M".into(),
                34 => "TQ1_0".into(),
                35 => "TQ2_0".into(),
                39 => "MXFP4".into(),
                t => format!("type {t}"),
            },
            other => format!("{other:?}"),
        }
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
