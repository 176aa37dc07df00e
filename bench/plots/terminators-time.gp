# Terminators established over time after a cold start, every create in
# flight at once (the headline terminators_bench run).
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output out
set title "terminators: established over time, cold start, 10 services per router"
set xlabel "seconds since the first create"
set ylabel "terminators ESTABLISHED (replies received)"
set format y "%.0s%c"
set grid
set key bottom right box opaque
f = data.'/terminators_time.dat'
plot f using 1:2 with lines lw 2 title "edgeplane-terminators"
