# Stray detection lateness: how long after its grace (2 s) a silent
# connection is closed, as the stray sees it and as the watchdog records it.
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "watchdog: stray connections closed after the 2 s grace (all strays connected in one burst)"
set xlabel "lateness beyond the grace (ms)"
set ylabel "percentile of strays (%)"
set yrange [0:100]
set ytics 10
set grid
set key bottom right box opaque
f = data.'/stray_latency.dat'
plot f using 2:1 with linespoints lw 2 pt 7 ps 0.6 title "seen by the stray (close - connect - grace)", \
     f using 3:1 with linespoints lw 2 pt 5 ps 0.6 title "in the watchdog (event - accepted - grace)"
