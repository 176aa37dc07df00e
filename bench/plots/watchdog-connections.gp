# Watchdog: RSS per idle joined router against the number of routers joined.
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "watchdog: memory per idle joined router (mTLS connection)"
set xlabel "routers joined (log scale)"
set ylabel "bytes per router (KB)"
set logscale x
set xrange [500:20000]
set yrange [0:*]
set format x "%.0s%c"
set grid
set key bottom right box opaque
f = data.'/watchdog_connections.dat'
plot f using 1:($2/1000) with linespoints lw 2 pt 7 title "watchdog RSS growth / routers", \
     f using 1:($3/1000) with linespoints lw 2 pt 5 title "of which OpenSSL's per-connection heap"
