import Foundation
import ScionIR

/// What a training run is asked to do, and what it reports, with Keras's names and defaults.
extension Trainer {
    public enum Loss: String, Sendable, CaseIterable {
        case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
        case categoricalCrossentropy = "categorical_crossentropy"
        case binaryCrossentropy = "binary_crossentropy"
        case meanSquaredError = "mse"

        /// Whether accuracy is a metric of this loss (Keras's "accuracy" picks the matching one).
        public var isClassification: Bool { self != .meanSquaredError }
    }

    public enum Optimizer: Sendable, Equatable {
        case sgd(momentum: Float, nesterov: Bool)
        case adam(beta1: Float, beta2: Float, epsilon: Float)
        /// Adam with decoupled weight decay (Keras 3's AdamW: `w -= w · decay · rate` before each
        /// Adam step, every variable).
        case adamW(beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float)
    }

    /// Learning rate by update count, as Keras's schedules compute it from `optimizer.iterations`.
    public enum Schedule: Sendable, Equatable {
        case constant
        /// Keras's `CosineDecay(rate, decay_steps, alpha)`.
        case cosine(decaySteps: Int, alpha: Float)
        /// Keras's `ExponentialDecay(rate, decay_steps, decay_rate, staircase=True)`: the rate times
        /// `decayRate` every `decaySteps` updates.
        case step(decaySteps: Int, decayRate: Float)

        /// The rate for the update that follows `iterations` earlier ones.
        public func rate(_ initial: Float, iterations: Int) -> Float {
            switch self {
            case .constant:
                return initial
            case .cosine(let steps, let alpha):
                let progress = Float(min(iterations, steps)) / Float(max(steps, 1))
                return initial * ((1 - alpha) * 0.5 * (1 + cos(Float.pi * progress)) + alpha)
            case .step(let steps, let decay):
                return initial * pow(decay, Float(iterations / max(steps, 1)))
            }
        }
    }

    public struct Options: Sendable {
        public var epochs = 10
        public var batchSize = 32
        public var learningRate: Float = 1e-3
        public var optimizer = Optimizer.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        public var schedule = Schedule.constant
        public var loss = Loss.sparseCategoricalCrossentropy
        public var seed: UInt64 = 0
        public init() {}
    }

    /// One epoch's training metrics (running means over its batches, as Keras reports them).
    public struct Epoch: Encodable, Sendable {
        public var epoch: Int
        public var loss: Double
        public var accuracy: Double?
        public var seconds: Double
    }

    /// Where an epoch stands after a batch, for a progress bar.
    public struct BatchProgress: Sendable {
        public var epoch: Int
        public var batch: Int
        public var batches: Int
        public var loss: Double
        public var accuracy: Double?
        public var seconds: Double
    }
}
