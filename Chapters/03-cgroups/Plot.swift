// --plot FILE.svg: CPU and memory over time, with the limits drawn, for slides and notes.
import Isolation
import SystemPackage

/// A run's samples, with the limits in force while they were taken.
struct PlotSegment {
    var title: String
    var samples: [Sample]
    var limits: ResourceLimits
}

enum Plot {
    /// Writes an SVG with two charts, CPU (in CPUs) and memory (in MiB), over one time
    /// axis. Each act is a segment; its limits are dashed red lines over its span.
    static func write(_ segments: [PlotSegment], to path: FilePath) throws {
        let width = 900.0, chartHeight = 220.0, left = 70.0, right = 20.0, top = 70.0, gap = 70.0
        let all = segments.flatMap(\.samples)
        let maxTime = max(all.map(\.time).max() ?? 1, 1)
        let maxCPU = max(all.map(\.cpus).max() ?? 1, segments.compactMap(\.limits.cpus).max() ?? 0, 1) * 1.1
        let mib = 1048576.0
        let maxMemory = max(Double(all.map(\.memoryBytes).max() ?? 0) / mib,
                            segments.compactMap { $0.limits.memoryBytes.map { Double($0) / mib } }.max() ?? 0, 1) * 1.1
        let plotWidth = width - left - right
        func x(_ t: Double) -> Double { left + t / maxTime * plotWidth }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(top + 2 * chartHeight + gap + 50))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="22" font-size="15" font-weight="bold">cgroup limits under stress: what the kernel counted</text>

        """
        for (index, chart) in [("CPU (CPUs)", maxCPU), ("memory (MiB)", maxMemory)].enumerated() {
            let y0 = top + Double(index) * (chartHeight + gap)
            func y(_ value: Double) -> Double { y0 + chartHeight - value / chart.1 * chartHeight }
            svg += "<text x=\"\(left - 60)\" y=\"\(y0 + chartHeight / 2)\" font-weight=\"bold\" transform=\"rotate(-90 \(left - 52) \(y0 + chartHeight / 2))\" text-anchor=\"middle\">\(chart.0)</text>\n"
            svg += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(chartHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
            let step = niceStep(chart.1)
            var value = 0.0
            while value <= chart.1 {
                svg += "<line x1=\"\(left)\" y1=\"\(format1(y(value)))\" x2=\"\(left + plotWidth)\" y2=\"\(format1(y(value)))\" stroke=\"#eee\"/>\n"
                svg += "<text x=\"\(left - 8)\" y=\"\(format1(y(value) + 4))\" text-anchor=\"end\">\(label(value))</text>\n"
                value += step
            }
            for (number, segment) in segments.enumerated() where !segment.samples.isEmpty {
                let values = segment.samples.map { index == 0 ? $0.cpus : Double($0.memoryBytes) / mib }
                let points = zip(segment.samples, values).map { "\(format1(x($0.time))),\(format1(y($1)))" }.joined(separator: " ")
                svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(index == 0 ? "#1f77b4" : "#2ca02c")\" stroke-width=\"2\"/>\n"
                let limit = index == 0 ? segment.limits.cpus : segment.limits.memoryBytes.map { Double($0) / mib }
                let span = (x(segment.samples.first!.time), x(segment.samples.last!.time))
                if let limit {
                    svg += "<line x1=\"\(format1(span.0))\" y1=\"\(format1(y(limit)))\" x2=\"\(format1(span.1))\" y2=\"\(format1(y(limit)))\" stroke=\"#d62728\" stroke-dasharray=\"6,4\" stroke-width=\"2\"/>\n"
                    svg += "<text x=\"\(format1(span.0 + 4))\" y=\"\(format1(y(limit) - 5))\" fill=\"#d62728\">limit \(format1(limit))</text>\n"
                }
                if index == 0 {
                    // Act titles above the charts, staggered so short acts do not overlap.
                    svg += "<line x1=\"\(format1(span.0))\" y1=\"\(format1(top - 22 + Double(number % 2) * 14))\" x2=\"\(format1(span.0))\" y2=\"\(top + 2 * chartHeight + gap)\" stroke=\"#bbb\" stroke-dasharray=\"2,3\"/>\n"
                    svg += "<text x=\"\(format1(span.0 + 4))\" y=\"\(format1(top - 24 + Double(number % 2) * 14))\" fill=\"#555\">\(escape(segment.title))</text>\n"
                }
            }
        }
        let axisY = top + 2 * chartHeight + gap + 20
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(axisY)\" text-anchor=\"middle\">time (s), 0 – \(format1(maxTime))</text>\n"
        svg += "</svg>\n"
        try inStage("writing the plot \(path)", detail: "--plot names an SVG file to write, in a folder that exists") {
            try FileSystem.writeFile(path, svg)
        }
    }

    /// A step for about four to eight grid lines: 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, …
    static func niceStep(_ maximum: Double) -> Double {
        var magnitude = 0.01
        while true {
            for factor in [1.0, 2.0, 2.5, 5.0] where maximum / (magnitude * factor) <= 6 { return magnitude * factor }
            magnitude *= 10
        }
    }

    static func label(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        if hundredths % 100 == 0 { return "\(hundredths / 100)" }
        if hundredths % 10 == 0 { return format1(value) }
        return "\(hundredths / 100).\(String(format2: hundredths % 100))"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}

extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : "\(value)" }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
