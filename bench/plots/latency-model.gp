# Write -> follower latency through edgeplane-model and the bus: the
# distribution (last repetition of model_bench). Called by bench/report.py
# with data='<dir of .dat files>' and out='<png path>'.
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "model: latency from sending a create to a follower seeing it (and to its durable reply)"
set xlabel "latency (ms, log scale)"
set ylabel "percentile of writes (%)"
set logscale x
set yrange [0:100]
set ytics 10
set grid xtics mxtics ytics
set key bottom right box opaque
f = data.'/model_latency.dat'
plot f using 2:1 with linespoints lw 2 pt 7 ps 0.6 title "follower visible, 1 client", \
     f using 3:1 with linespoints lw 2 pt 7 ps 0.6 title "follower visible, 32 clients", \
     f using 4:1 with lines lw 1 dt 2 title "durable reply, 1 client", \
     f using 5:1 with lines lw 1 dt 2 title "durable reply, 32 clients"
