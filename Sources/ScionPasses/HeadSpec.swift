import Foundation
import ScionIR

/// The layers `scion graft --head` appends, parsed from a comma-separated list:
///
/// ```
/// gap                      GlobalAveragePooling over the spatial axes
/// gmp                      GlobalMaxPooling
/// flatten                  Flatten
/// dense:UNITS[:ACTIVATION] Dense (glorot_uniform kernel, zero bias), e.g. dense:5:softmax
/// dropout:RATE             Dropout, 0 <= RATE < 1
/// bn                       BatchNormalization (gamma 1, beta 0, mean 0, variance 1)
/// relu | sigmoid | softmax | tanh | swish | gelu    an activation layer
/// ```
///
/// `gap,dropout:0.2,dense:5:softmax` is the classic transfer-learning head.
public struct HeadSpec: Equatable, Sendable {
    /// One layer of the head, as the list above spells it.
    public enum Layer: Equatable, Sendable {
        /// `gap`.
        case globalAveragePooling
        /// `gmp`.
        case globalMaxPooling
        /// `flatten`.
        case flatten
        /// `dense:UNITS[:ACTIVATION]` (no activation is `.linear`).
        case dense(units: Int, activation: Activation)
        /// `dropout:RATE`.
        case dropout(rate: Float)
        /// `bn`.
        case batchNormalization
        /// An activation layer (`relu`, `softmax`...).
        case activation(Activation)
    }

    /// The layers, in the order they are appended.
    public var layers: [Layer]

    static let activations: [String: Activation] = [
        "relu": .plainRelu, "sigmoid": .sigmoid, "softmax": .softmax(axis: -1), "tanh": .tanh, "swish": .swish,
        "gelu": .gelu(approximate: false), "linear": .linear,
    ]
    static let words = ["gap", "gmp", "flatten", "dense:UNITS[:ACTIVATION]", "dropout:RATE", "bn"]
        + ["relu", "sigmoid", "softmax", "tanh", "swish", "gelu"]

    /// Parses `text`; a mistake names the item, says what is wrong and what would be right.
    public init(parsing text: String) throws {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw HeadSpecError(item: "", position: 0, "the head is empty; e.g. gap,dropout:0.2,dense:5:softmax")
        }
        layers = try items.enumerated().map { try Self.layer($0.element, position: $0.offset + 1) }
    }

    /// A head of `layers`, built in code.
    public init(layers: [Layer]) { self.layers = layers }

    static func layer(_ item: String, position: Int) throws -> Layer {
        let parts = item.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let word = parts[0].lowercased()
        let fail = { (reason: String) in HeadSpecError(item: item, position: position, reason) }
        switch word {
        case "gap", "gmp", "flatten", "bn":
            guard parts.count == 1 else { throw fail("'\(word)' takes no arguments") }
            return word == "gap" ? .globalAveragePooling : word == "gmp" ? .globalMaxPooling : word == "flatten" ? .flatten : .batchNormalization
        case "dense":
            guard (2...3).contains(parts.count), let units = Int(parts[1]), units > 0, units <= 1 << 24 else {
                throw fail("write dense:UNITS or dense:UNITS:ACTIVATION with UNITS a positive whole number, e.g. dense:10:softmax")
            }
            var activation = Activation.linear
            if parts.count == 3 {
                guard let named = activations[parts[2].lowercased()] else {
                    throw fail("unknown activation '\(parts[2])'; known: \(activations.keys.sorted().joined(separator: ", "))")
                }
                activation = named
            }
            return .dense(units: units, activation: activation)
        case "dropout":
            guard parts.count == 2, let rate = Float(parts[1]), rate >= 0, rate < 1 else {
                throw fail("write dropout:RATE with 0 <= RATE < 1, e.g. dropout:0.2")
            }
            return .dropout(rate: rate)
        default:
            if parts.count == 1, let activation = activations[word], word != "linear" { return .activation(activation) }
            let suggestion = closestWord(to: word)
            throw fail("unknown layer '\(parts[0])'\(suggestion.map { "; did you mean '\($0)'?" } ?? "") "
                + "Known: \(words.joined(separator: ", "))")
        }
    }

    static func closestWord(to word: String) -> String? {
        let names = ["gap", "gmp", "flatten", "dense", "dropout", "bn"] + activations.keys.filter { $0 != "linear" }
        let scored = names.map { ($0, NodeLookup.editDistance(Array($0), Array(word))) }.min { $0.1 < $1.1 }
        guard let (name, distance) = scored, distance <= max(1, word.count / 2) else { return nil }
        return name
    }
}

/// A head specification that does not parse: which item (1-based) and why.
public struct HeadSpecError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The item as written.
    public var item: String
    /// Its position in the list, from 1; 0 when the whole head is at fault.
    public var position: Int
    /// What is wrong and what would be right.
    public var reason: String
    /// An error about `item` at `position`.
    public init(item: String, position: Int, _ reason: String) {
        self.item = item; self.position = position; self.reason = reason
    }
    /// `head item N 'ITEM': reason`, as the command line prints it.
    public var description: String {
        position == 0 ? "head: \(reason)" : "head item \(position) '\(item)': \(reason)"
    }
}
