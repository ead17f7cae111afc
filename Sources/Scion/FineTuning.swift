import Foundation
import ScionIR
import ScionPasses
import ScionRuntime

/// Transfer learning's training recipe on a model: one or more phases, each optionally making more
/// of the base trainable first (`--unfreeze-top N`, `--unfreeze REGEX`), then training with its own
/// optimizer, as recompiling a Keras model between phases does. Validation metrics are taken at the
/// end of each epoch in inference mode.
public struct FineTuning {
    /// One phase of the recipe: what to thaw first, then how to train.
    public struct Phase {
        /// The phase's name in the history and the plans (`head`, `fine-tune`).
        public var name: String
        /// Epochs, batch size, optimizer, learning rate and loss for this phase.
        public var options: Trainer.Options
        /// Applied before the phase trains (the layers to thaw); nil keeps the trainable flags.
        public var unfreeze: FreezePass?
        /// Validate after every this many epochs (and after the last): a full network evaluated on many
        /// images every epoch can cost more than the training (the demo's from-scratch baseline).
        public var validationInterval: Int
        /// A phase; `validationInterval` below 1 counts as 1.
        public init(name: String, options: Trainer.Options, unfreeze: FreezePass? = nil, validationInterval: Int = 1) {
            self.name = name; self.options = options; self.unfreeze = unfreeze
            self.validationInterval = max(validationInterval, 1)
        }
    }

    /// What a phase will train, said before it starts.
    public struct PhasePlan: Sendable, Encodable {
        /// The phase's name.
        public var phase: String
        /// Layers made trainable for this phase.
        public var unfrozen: [String]
        /// BatchNormalizations among the thawed layers that stay frozen (inference mode).
        public var batchNormKeptFrozen: [String]
        /// Trainable tensors in this phase.
        public var trainableTensors: Int
        /// Trainable values (elements of those tensors) in this phase.
        public var trainableValues: Int
        /// Nodes of the frozen prefix (run once per sample when cached) and of the trained part.
        public var prefixNodes: Int
        /// Whether the prefix holds any frozen layer with weights (else it only reshapes the input).
        public var prefixHasWeights: Bool
        /// Nodes of the trained part, run forward and backward every batch.
        public var trainedNodes: Int
        /// Whether the frozen prefix ran once per sample and training reads its stored outputs (else it
        /// is run again for every batch).
        public var cached: Bool
        /// The values where the frozen prefix ends and the trained part begins.
        public var frontier: [String]
        /// Time spent running the frozen prefix over the data.
        public var prefixSeconds: Double
        /// Whether the loss reads the output as logits (no softmax or sigmoid makes it), as Keras's
        /// `from_logits=True` does.
        public var lossFromLogits = false
    }

    /// One epoch's metrics, as Keras's `History` records them.
    public struct EpochRecord: Sendable, Encodable {
        /// The phase the epoch belongs to.
        public var phase: String
        /// The epoch's number in its phase, from 1.
        public var epoch: Int
        /// Epochs in the phase.
        public var epochs: Int
        /// Mean training loss over the epoch's samples.
        public var loss: Double
        /// Training accuracy, for classification losses; nil otherwise.
        public var accuracy: Double?
        /// Loss on the validation data, when given and validated this epoch.
        public var validationLoss: Double?
        /// Accuracy on the validation data, when given, validated this epoch and a classification.
        public var validationAccuracy: Double?
        /// Time the epoch took.
        public var seconds: Double

        enum CodingKeys: String, CodingKey {
            case phase, epoch, epochs, loss, accuracy, seconds
            case validationLoss = "val_loss", validationAccuracy = "val_accuracy"
        }
    }

    /// What `run` reports while it works.
    public enum Event {
        /// A phase is about to train: what it will train.
        case planned(PhasePlan)
        /// A batch finished, in the named phase.
        case batch(String, Trainer.BatchProgress)
        /// An epoch finished.
        case epoch(EpochRecord)
    }

    /// The model, with the weights and trainable flags the phases so far left it.
    public private(set) var model: Model
    /// Every epoch of every phase run so far, in order.
    public private(set) var history: [EpochRecord] = []
    /// Each phase's plan, in order.
    public private(set) var plans: [PhasePlan] = []
    /// Every tensor some phase trained, and the moving statistics of BatchNormalizations that
    /// trained: the only tensors allowed to differ from the model given.
    public private(set) var mutable: Set<String> = []

    /// A recipe starting from `model` (its trainable flags as given: freeze the base first).
    public init(model: Model) { self.model = model }

    /// The second phase's default rate, a tenth of the first, computed as Keras users write it in
    /// Python (`lr / 10` on the decimal they typed, in double, then float32): 0.01 gives 0.001, where
    /// dividing the float32 would give 0.0009999999.
    public static func tenth(of rate: Float) -> Float {
        Float((Double("\(rate)") ?? Double(rate)) / 10)
    }

    /// Runs one phase on (x, y), with optional validation data.
    public mutating func run(_ phase: Phase, data: (x: RuntimeTensor, y: RuntimeTensor), validation: (x: RuntimeTensor, y: RuntimeTensor)?,
                             events: (Event) -> Void = { _ in }) throws {
        try run(phase, samples: .arrays(x: data.x, y: data.y), validation: validation.map { .arrays(x: $0.x, y: $0.y) }, events: events)
    }

    /// Runs one phase on `samples` (arrays, or streamed: a folder of images read batch by batch).
    public mutating func run(_ phase: Phase, samples: TrainingSamples, validation: TrainingSamples?,
                             events: (Event) -> Void = { _ in }) throws {
        var plan = PhasePlan(phase: phase.name, unfrozen: [], batchNormKeptFrozen: [], trainableTensors: 0, trainableValues: 0,
                             prefixNodes: 0, prefixHasWeights: false, trainedNodes: 0, cached: false, frontier: [], prefixSeconds: 0)
        if let unfreeze = phase.unfreeze {
            let before = model.graph
            try model.apply(unfreeze)
            plan.unfrozen = Self.newlyTrainable(before, model.graph)
            if unfreeze.keepBatchNormFrozen {
                var all = unfreeze
                all.keepBatchNormFrozen = false
                var probe = before
                try all.run(&probe)
                plan.batchNormKeptFrozen = Self.newlyTrainable(before, probe).filter { !plan.unfrozen.contains($0) }
            }
        }
        // The trainer runs the lowered graph; the tensors it trains go back into the model's own
        // layout after the phase, at positions worked out now so a tensor that cannot go back fails
        // before the training, not after.
        var trainer: Trainer
        let positions: [String: [Int32]?]
        do {
            trainer = try Trainer(graph: try Model.lowered(model.graph).0, augmenting: phase.options.augment)
            do {
                positions = try ExecutorLowering().sourcePositions(of: trainer.writtenParameters, in: model.graph)
            } catch let error as PassError {
                throw RuntimeError(error.subject, error.reason)
            }
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, error.description)
        }
        let started = Date()
        let features: Trainer.Features, validationFeatures: Trainer.Features?
        let targets: RuntimeTensor, validationTargets: RuntimeTensor?
        do {
            (features, targets) = try samples.features(trainer)
            let held = try validation.map { try $0.features(trainer) }
            (validationFeatures, validationTargets) = (held?.0, held?.1)
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, error.description)
        }
        plan.trainableTensors = trainer.trainableParameters.count
        plan.trainableValues = trainer.trainableParameters.reduce(0) { $0 + (trainer.graph.parameters[$1]?.elementCount ?? 0) }
        plan.prefixNodes = trainer.prefixNodeCount
        plan.prefixHasWeights = trainer.prefixHasWeights
        plan.trainedNodes = trainer.trainedNodeCount
        plan.cached = features.isCached
        plan.frontier = trainer.frontier
        plan.prefixSeconds = Date().timeIntervalSince(started)
        plan.lossFromLogits = trainer.lossReadsLogits(phase.options.loss)
        plans.append(plan)
        events(.planned(plan))
        let epochs = phase.options.epochs
        var records: [EpochRecord] = []
        do {
            _ = try trainer.fit(features, targets: targets, options: phase.options, onBatch: { events(.batch(phase.name, $0)) }) { epoch, current in
                var record = EpochRecord(phase: phase.name, epoch: epoch.epoch, epochs: epochs, loss: epoch.loss, accuracy: epoch.accuracy,
                                         seconds: epoch.seconds)
                if let validationFeatures, let validationTargets, epoch.epoch % phase.validationInterval == 0 || epoch.epoch == epochs {
                    let result = try current.evaluate(validationFeatures, targets: validationTargets, loss: phase.options.loss)
                    (record.validationLoss, record.validationAccuracy) = (result.loss, result.accuracy)
                }
                records.append(record)
                events(.epoch(record))
            }
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, "\(phase.name) phase: \(error.description)")
        }
        history += records
        mutable.formUnion(trainer.writtenParameters)
        do {
            model.graph = try ExecutorLowering().writeBack(trainer.trainedTensors, into: model.graph, positions: positions)
        } catch let error as PassError {
            throw ScionError(file: model.path, "\(phase.name) phase: \(error.subject): \(error.reason)")
        }
    }

    /// Layers with a weight trainable in `after` and in `before` not.
    static func newlyTrainable(_ before: Graph, _ after: Graph) -> [String] {
        after.nodes.filter { node in
            node.parameters.contains { after.parameters[$0]?.trainable == true && before.parameters[$0]?.trainable != true }
        }.map(\.name)
    }
}

/// Training or validation samples for `FineTuning.run`: arrays in memory, or streamed (a folder of
/// images decoded batch by batch; the frozen prefix's outputs are what stays in memory).
public enum TrainingSamples {
    case arrays(x: RuntimeTensor, y: RuntimeTensor)
    case streamed(any StreamedSamples)

    /// The trainer's features of these samples, and the targets of those it kept.
    func features(_ trainer: Trainer) throws -> (Trainer.Features, RuntimeTensor) {
        switch self {
        case .arrays(let x, let y):
            return (try trainer.features(of: x), y)
        case .streamed(let source):
            let features = try trainer.features(streaming: source)
            return (features, source.targets)
        }
    }
}
