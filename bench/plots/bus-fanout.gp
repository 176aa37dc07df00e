# Bus fan-out: every message to K subscribers, deliveries/s summed over them,
# against one raw libzmq PUB connected to K SUBs (same run, plaintext).
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "bus: fan-out to K subscribers, 200-byte events, plaintext (2 cores shared by all processes)"
set xlabel "subscribers"
set ylabel "million deliveries per second, all subscribers"
set y2label "ratio bus / raw"
set logscale x 2
set xtics (1, 2, 4, 8)
set xrange [0.8:10]
set yrange [0:*]
set y2range [0:1.2]
set y2tics 0.1
set ytics nomirror
set grid
set key below
f = data.'/bus_fanout.dat'
plot f using 1:($2/1e6) with linespoints lw 2 pt 7 title "raw libzmq PUB -> K SUB", \
     f using 1:($3/1e6) with linespoints lw 2 pt 5 title "edgeplane-bus -> K ep_subscriber", \
     f using 1:4 axes x1y2 with linespoints lw 1 dt 2 pt 2 title "ratio (right)"
