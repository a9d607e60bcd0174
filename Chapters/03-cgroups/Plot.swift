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
    /// Writes an SVG with three charts over one time axis: CPU (in CPUs), memory (in
    /// MiB) and tasks (pids.current). Each act is a segment; its limits are dashed red
    /// lines over its span, labelled with their unit inside the frame. The time axis has
    /// ticks and labels in seconds.
    static func write(_ segments: [PlotSegment], to path: FilePath) throws {
        let width = 900.0, chartHeight = 170.0, left = 70.0, right = 20.0, top = 70.0, gap = 40.0
        let all = segments.flatMap(\.samples)
        let maxTime = max(all.map(\.time).max() ?? 1, 1)
        let mib = 1048576.0
        struct Chart { var title: String; var unit: String; var color: String; var value: (Sample) -> Double; var limit: (ResourceLimits) -> Double? }
        let charts = [
            Chart(title: "CPU (CPUs)", unit: "CPUs", color: "#1f77b4", value: { $0.cpus }, limit: { $0.cpus }),
            Chart(title: "memory (MiB)", unit: "MiB", color: "#2ca02c", value: { Double($0.memoryBytes) / mib }, limit: { $0.memoryBytes.map { Double($0) / mib } }),
            Chart(title: "tasks (pids)", unit: "tasks", color: "#9467bd", value: { Double($0.pids) }, limit: { $0.pids.map(Double.init) }),
        ]
        let plotWidth = width - left - right
        let bottom = top + Double(charts.count) * chartHeight + Double(charts.count - 1) * gap
        func x(_ t: Double) -> Double { left + t / maxTime * plotWidth }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(bottom + 50))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="22" font-size="15" font-weight="bold">cgroup limits under stress: what the kernel counted</text>

        """
        for (index, chart) in charts.enumerated() {
            let maximum = max(all.map(chart.value).max() ?? 1, segments.compactMap { chart.limit($0.limits) }.max() ?? 0, 1) * 1.15
            let y0 = top + Double(index) * (chartHeight + gap)
            func y(_ value: Double) -> Double { y0 + chartHeight - value / maximum * chartHeight }
            svg += "<text x=\"\(left - 60)\" y=\"\(y0 + chartHeight / 2)\" font-weight=\"bold\" transform=\"rotate(-90 \(left - 52) \(y0 + chartHeight / 2))\" text-anchor=\"middle\">\(chart.title)</text>\n"
            svg += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(chartHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
            let step = niceStep(maximum)
            var value = 0.0
            while value <= maximum {
                svg += "<line x1=\"\(left)\" y1=\"\(format1(y(value)))\" x2=\"\(left + plotWidth)\" y2=\"\(format1(y(value)))\" stroke=\"#eee\"/>\n"
                svg += "<text x=\"\(left - 8)\" y=\"\(format1(y(value) + 4))\" text-anchor=\"end\">\(label(value))</text>\n"
                value += step
            }
            for (number, segment) in segments.enumerated() where !segment.samples.isEmpty {
                let points = segment.samples.map { "\(format1(x($0.time))),\(format1(y(chart.value($0))))" }.joined(separator: " ")
                svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(chart.color)\" stroke-width=\"2\"/>\n"
                let span = (x(segment.samples.first!.time), x(segment.samples.last!.time))
                if let limit = chart.limit(segment.limits) {
                    svg += "<line x1=\"\(format1(span.0))\" y1=\"\(format1(y(limit)))\" x2=\"\(format1(span.1))\" y2=\"\(format1(y(limit)))\" stroke=\"#d62728\" stroke-dasharray=\"6,4\" stroke-width=\"2\"/>\n"
                    // Inside the frame: below the line when it is near the top.
                    let labelY = y(limit) - 5 < y0 + 14 ? y(limit) + 15 : y(limit) - 5
                    let text = "limit \(label(limit)) \(chart.unit)"
                    let labelX = min(span.0 + 4, left + plotWidth - 8 * Double(text.count) - 4)
                    svg += "<text x=\"\(format1(labelX))\" y=\"\(format1(labelY))\" fill=\"#d62728\">\(text)</text>\n"
                }
                if index == 0 {
                    // Act titles above the charts, staggered so short acts do not overlap.
                    svg += "<line x1=\"\(format1(span.0))\" y1=\"\(format1(top - 22 + Double(number % 2) * 14))\" x2=\"\(format1(span.0))\" y2=\"\(bottom)\" stroke=\"#bbb\" stroke-dasharray=\"2,3\"/>\n"
                    svg += "<text x=\"\(format1(span.0 + 4))\" y=\"\(format1(top - 24 + Double(number % 2) * 14))\" fill=\"#555\">\(escape(segment.title))</text>\n"
                }
            }
        }
        // The time axis: a tick and a label every `step` seconds, below the last chart.
        let step = niceStep(maxTime)
        var tick = 0.0
        while tick <= maxTime + 1e-9 {
            svg += "<line x1=\"\(format1(x(tick)))\" y1=\"\(bottom)\" x2=\"\(format1(x(tick)))\" y2=\"\(bottom + 5)\" stroke=\"#555\"/>\n"
            svg += "<text x=\"\(format1(x(tick)))\" y=\"\(bottom + 18)\" text-anchor=\"middle\">\(label(tick))</text>\n"
            tick += step
        }
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(bottom + 38)\" text-anchor=\"middle\">time (s)</text>\n"
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
