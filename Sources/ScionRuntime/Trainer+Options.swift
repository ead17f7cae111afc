import Foundation
import ScionIR

/// What a training run is asked to do, and what it reports, with Keras's names and defaults.
extension Trainer {
    /// The loss to minimise, by its Keras name (`rawValue`).
    public enum Loss: String, Sendable, CaseIterable {
        case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
        case categoricalCrossentropy = "categorical_crossentropy"
        case binaryCrossentropy = "binary_crossentropy"
        case meanSquaredError = "mse"

        /// Whether accuracy is a metric of this loss (Keras's "accuracy" picks the matching one).
        package var isClassification: Bool { self != .meanSquaredError }
    }

    /// The update rule, with Keras 3's formulas.
    public enum Optimizer: Sendable, Equatable {
        /// Keras's `SGD(momentum, nesterov)`.
        case sgd(momentum: Float, nesterov: Bool)
        /// Keras's `Adam(beta_1, beta_2, epsilon)`.
        case adam(beta1: Float, beta2: Float, epsilon: Float)
        /// Adam with decoupled weight decay (Keras 3's AdamW: `w -= w · decay · rate` before each
        /// Adam step, every variable).
        case adamW(beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float)
    }

    /// Learning rate by update count, as Keras's schedules compute it from `optimizer.iterations`.
    public enum Schedule: Sendable, Equatable {
        /// The initial rate throughout.
        case constant
        /// Keras's `CosineDecay(rate, decay_steps, alpha)`.
        case cosine(decaySteps: Int, alpha: Float)
        /// Keras's `ExponentialDecay(rate, decay_steps, decay_rate, staircase=True)`: the rate times
        /// `decayRate` every `decaySteps` updates.
        case step(decaySteps: Int, decayRate: Float)

        /// The rate for the update that follows `iterations` earlier ones.
        package func rate(_ initial: Float, iterations: Int) -> Float {
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

    /// The settings of one `fit`; the defaults are Keras's (Adam at 0.001, batches of 32).
    public struct Options: Sendable {
        /// Passes over the data.
        public var epochs = 10
        /// Samples per update; the last batch of an epoch may be smaller.
        public var batchSize = 32
        /// The initial learning rate, which `schedule` changes.
        public var learningRate: Float = 1e-3
        /// The update rule.
        public var optimizer = Optimizer.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        /// The learning rate by update count.
        public var schedule = Schedule.constant
        /// The loss to minimise.
        public var loss = Loss.sparseCategoricalCrossentropy
        /// Seeds the shuffling, Dropout and the augmentation layers' transforms.
        public var seed: UInt64 = 0
        /// Whether the augmentation layers transform each batch (Keras's `fit`); off, they are the
        /// identity while training too. The trainer is built with it (`Trainer(graph:augmenting:)`).
        public var augment = true
        /// Keras's defaults.
        public init() {}
    }

    /// One epoch's training metrics (running means over its batches, as Keras reports them).
    public struct Epoch: Encodable, Sendable {
        /// The epoch, from 1.
        public var epoch: Int
        /// Mean training loss.
        public var loss: Double
        /// Training accuracy; nil for a loss without one (mean squared error).
        public var accuracy: Double?
        /// Wall-clock time of the epoch.
        public var seconds: Double
    }

    /// Where an epoch stands after a batch, for a progress bar.
    public struct BatchProgress: Sendable {
        /// The epoch, from 1.
        public var epoch: Int
        /// Batches done in this epoch, from 1.
        public var batch: Int
        /// Batches in the epoch.
        public var batches: Int
        /// Mean loss so far this epoch.
        public var loss: Double
        /// Accuracy so far this epoch; nil for a loss without one.
        public var accuracy: Double?
        /// Time since the epoch started.
        public var seconds: Double
    }
}
