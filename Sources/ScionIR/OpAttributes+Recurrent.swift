/// Keras's recurrent layers (SimpleRNN, LSTM, GRU), alone or wrapped in Bidirectional, and ONNX's
/// RNN, LSTM and GRU: one op that runs a cell over the time axis of a `[batch, time, features]` input.
///
/// Parameters use Keras's weight layout and Keras's nesting roles, so Keras files round-trip
/// unchanged (gates stacked along the last axis, `G` gates of `units` each; G = 1, 4, 3):
/// ```
///  one direction:  cell/kernel [features, G*units]  cell/recurrent_kernel [units, G*units]  cell/bias
///  Bidirectional:  forward_layer/cell/...  then  backward_layer/cell/...  (same three each)
/// ```
/// `bias` is `[G*units]`, except GRU with `resetAfter`: `[2, 3*units]` (input bias row, then
/// recurrent bias row). Gate order is Keras's: LSTM `i, f, c, o`; GRU `z, r, h`. The ONNX reader and
/// writer convert to and from ONNX's order (LSTM `i, o, f, c`; GRU `z, r, h`), see docs/recurrent.md.
///
/// Outputs: the sequence `[batch, time, units]` (or the last output `[batch, units]` without
/// `returnSequences`), then with `returnState` the final states, Keras's order: LSTM `h, c`, the
/// others `h`; a Bidirectional layer lists the forward direction's states, then the backward's.
public struct RecurrentAttributes: Equatable, Sendable {
    /// The cell run at each step.
    public enum Cell: String, Sendable, CaseIterable {
        /// `h = activation(x W + h U + b)`; ONNX RNN.
        case simpleRNN = "SimpleRNN"
        /// Input, forget, candidate and output gates with a cell state; ONNX LSTM.
        case lstm = "LSTM"
        /// Update, reset and candidate gates; ONNX GRU.
        case gru = "GRU"

        /// Gates stacked in the kernels: 1, 4, 3.
        public var gateCount: Int {
            switch self {
            case .simpleRNN: 1
            case .lstm: 4
            case .gru: 3
            }
        }

        /// States carried between steps: LSTM carries `h` and `c`, the others `h`.
        public var stateCount: Int { self == .lstm ? 2 : 1 }
    }

    /// How Bidirectional combines the two directions' outputs (Keras's `merge_mode`).
    public enum Merge: String, Sendable, CaseIterable {
        /// The two outputs side by side along the last axis (Keras's default).
        case concat
        /// Their sum.
        case sum
        /// Their product.
        case mul
        /// Their mean.
        case ave
        /// `merge_mode=None`: the two directions' outputs are separate outputs.
        case separate = "none"
    }

    /// The cell run at each step.
    public var cell: Cell
    /// State size per direction.
    public var units: Int
    /// Applied to the candidate (LSTM's `c`, GRU's `h`) and to LSTM's output; SimpleRNN's only one.
    public var activation: Activation
    /// Applied to the gates (LSTM, GRU); unused by SimpleRNN.
    public var recurrentActivation: Activation
    /// Whether the cell has a `bias` weight.
    public var useBias: Bool
    /// Whether the whole output sequence is returned, or only the last step's output.
    public var returnSequences: Bool
    /// Whether the final states follow the output.
    public var returnState: Bool
    /// The (forward) direction reads the sequence from its end; its output sequence stays in the
    /// order it was computed (reversed), as Keras returns it.
    public var goBackwards: Bool
    /// GRU only: the reset gate multiplies the recurrent projection after the matmul (Keras 2.x+ and
    /// cuDNN's form, two bias rows) rather than the state before it.
    public var resetAfter: Bool
    /// Keras's `dropout`: the fraction of the inputs dropped at each step while training (kept so
    /// files round-trip; inference ignores it, ONNX has no place for it).
    public var dropout: Float = 0
    /// Keras's `recurrent_dropout`: the same for the state.
    public var recurrentDropout: Float = 0
    /// Nil for one direction; for Bidirectional, how the two are merged.
    public var bidirectional: Merge?
    /// ONNX's form (RNN, LSTM, GRU with layout 0), as the ONNX reader brings it in: the input is
    /// `[time, batch, features]` and the outputs are ONNX's `Y [time, directions, batch, units]` (each
    /// direction in time order), `Y_h` and, for LSTM, `Y_c` `[directions, batch, units]`;
    /// `returnSequences`, `returnState` and the merge mode do not apply. `KerasLayersPass` folds it
    /// into Keras's form when the Transposes and Reshapes around it are the ones that say so. The
    /// node may read initial states after the sequence, ONNX's `initial_h` (and LSTM's `initial_c`)
    /// `[directions, batch, units]`; without them the states start at zeros, as Keras's do.
    public var timeMajor: Bool = false
    /// Keras's mask (`Embedding(mask_zero=True)` upstream): nil when every step is read. Otherwise
    /// the node has a second input, the mask source `[batch, time, ...]` (the Embedding's token ids),
    /// and a step is read only where some value of the source at that step differs from this one.
    /// At a skipped step the states are carried over unchanged and the output is the carried output
    /// (zeros before the first read step), or zeros with `zeroOutputsAtMaskedSteps`. Keras does not
    /// write the mask in Keras 2 files and rebuilds it from the Embedding when Keras 3 reloads a
    /// file, so the Keras writers write the layer without it (see docs/recurrent.md).
    public var maskValue: Float? = nil
    /// Keras's `zero_output_for_mask` as a single layer's config sets it; Bidirectional forces it to
    /// `return_sequences` (see `zeroOutputsAtMaskedSteps`).
    public var zeroOutputForMask: Bool = false
    /// Keras's ConvLSTM1D/2D/3D: nil for a dense cell. Otherwise the cell is an LSTM whose input and
    /// recurrent transforms are convolutions over `[batch, time, spatial..., channels]` (channels
    /// last), `units` being Keras's `filters`: the kernel is `[k..., channels, 4*units]`, the recurrent
    /// kernel `[k..., units, 4*units]`, and the outputs and states are `[batch, (time,) spatial'...,
    /// units]`. Only LSTM cells, one direction, no mask, Keras's form (see docs/recurrent.md).
    public var convolution: RecurrentConvolution? = nil
    /// Keras's `initial_state` call argument (an encoder's final states starting a decoder): the node
    /// reads the states its cells start from, after the sequence (and the mask source), each
    /// `[batch, units]`, in Keras's order: `h` (and LSTM's `c`) of the forward direction, then the
    /// backward one's. Without them the states start at zeros. Keras's form only (ONNX's form reads
    /// `initial_h`, `initial_c` by position).
    public var readsInitialStates: Bool = false

    /// Number of initial states the node reads in Keras's form.
    public var initialStateCount: Int { readsInitialStates && !timeMajor ? cell.stateCount * cellPaths.count : 0 }

    /// Whether a masked step's output is zeros rather than the carried output: Keras's Bidirectional
    /// sets `zero_output_for_mask = return_sequences` on both its layers.
    public var zeroOutputsAtMaskedSteps: Bool { bidirectional == nil ? zeroOutputForMask : returnSequences }

    /// Attributes with these values.
    public init(cell: Cell, units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid,
                useBias: Bool = true, returnSequences: Bool = false, returnState: Bool = false, goBackwards: Bool = false,
                resetAfter: Bool = true, bidirectional: Merge? = nil) {
        self.cell = cell; self.units = units; self.activation = activation; self.recurrentActivation = recurrentActivation
        self.useBias = useBias; self.returnSequences = returnSequences; self.returnState = returnState
        self.goBackwards = goBackwards; self.resetAfter = resetAfter; self.bidirectional = bidirectional
    }

    /// The directions' attribute paths in parameter roles: `cell`, or `forward_layer/cell` and
    /// `backward_layer/cell`.
    public var cellPaths: [String] {
        bidirectional == nil ? ["cell"] : ["forward_layer/cell", "backward_layer/cell"]
    }

    /// Number of outputs: the output (two when the directions are not merged) and the states;
    /// in ONNX's form `Y`, `Y_h` (and `Y_c`).
    public var outputCount: Int {
        if timeMajor { return cell == .lstm ? 3 : 2 }
        let directions = bidirectional == nil ? 1 : 2
        let outputs = bidirectional == .separate ? 2 : 1
        return outputs + (returnState ? cell.stateCount * directions : 0)
    }

    /// Keras's class name: the cell's, or `ConvLSTM<rank>D`.
    public var layerName: String {
        convolution.map { "ConvLSTM\($0.rank)D" } ?? cell.rawValue
    }

    /// Shape of one direction's bias.
    public var biasShape: [Int] {
        cell == .gru && resetAfter ? [2, 3 * units] : [cell.gateCount * units]
    }
}

/// The convolutions of Keras's ConvLSTM cell: the input's, with these settings, and the state's,
/// with the same kernel size but 'same' padding, stride 1 and no dilation (Keras's `recurrent_conv`),
/// so the state keeps the input convolution's output size.
public struct RecurrentConvolution: Equatable, Sendable {
    /// Kernel length per spatial axis; its count is the rank (1, 2, 3).
    public var kernelSize: [Int]
    /// The input convolution's strides.
    public var strides: [Int]
    /// The input convolution's dilations.
    public var dilations: [Int]
    /// The input convolution's padding: `.valid` or `.same`.
    public var padding: Padding

    /// Attributes with these values.
    public init(kernelSize: [Int], strides: [Int], dilations: [Int], padding: Padding) {
        self.kernelSize = kernelSize; self.strides = strides; self.dilations = dilations; self.padding = padding
    }

    /// Spatial rank.
    public var rank: Int { kernelSize.count }

    /// Taps per kernel position: the product of the kernel's lengths.
    public var taps: Int { kernelSize.reduce(1, *) }

    /// The input convolution's output length along spatial axis `axis` for an input of `length`
    /// (TensorFlow's 'same': `ceil(length / stride)`), nil when unknown.
    public func outputLength(_ length: Int?, axis: Int) -> Int? {
        guard let length else { return nil }
        switch padding {
        case .same: return (length + strides[axis] - 1) / strides[axis]
        default:
            let span = (kernelSize[axis] - 1) * dilations[axis] + 1
            return max((length - span) / strides[axis] + 1, 0)
        }
    }
}
