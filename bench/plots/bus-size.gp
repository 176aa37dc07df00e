# Bus throughput against message size, through edgeplane-bus and raw libzmq
# PUB -> SUB, plaintext and CURVE, in the same run.
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "bus: events/s against message size (raw libzmq baseline in the same run)"
set xlabel "message body (bytes, log scale)"
set ylabel "messages per second (log scale)"
set y2label "ratio bus / raw"
set logscale x
set logscale y
set format y "%.0s%c"
set y2range [0:1.2]
set y2tics 0.1
set ytics nomirror
set grid
set key below
f = data.'/bus_size.dat'
plot f using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "raw libzmq, plaintext", \
     f using 1:3 with linespoints lw 2 pt 5 lc rgb "#1f77b4" dt 2 title "edgeplane-bus, plaintext", \
     f using 1:4 with linespoints lw 2 pt 7 lc rgb "#d62728" title "raw libzmq, CURVE", \
     f using 1:5 with linespoints lw 2 pt 5 lc rgb "#d62728" dt 2 title "edgeplane-bus, CURVE", \
     f using 1:6 axes x1y2 with points pt 2 ps 1.2 lc rgb "#1f77b4" title "ratio, plaintext (right)", \
     f using 1:7 axes x1y2 with points pt 2 ps 1.2 lc rgb "#d62728" title "ratio, CURVE (right)"
